/* probe: small, static actions the VM tier runs inside a cage, where the
 * guest has no compiler or interpreter.
 *
 *   probe mem MIB      allocates and touches MIB MiB; prints "touched N MiB"
 *                      as it goes (an OOM kill ends it early)
 *   probe fork N       keeps up to N children alive at once for 3 s; prints
 *                      "forks ok A failed B"
 *   probe burn SECS    spins on the CPU for SECS seconds of wall time
 *   probe landlock     prints the kernel's Landlock ABI ("landlock 0": none)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int mem(long mib) {
    for (long i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (!p) { printf("malloc failed at %ld MiB\n", i); return 1; }
        memset(p, 1, 1 << 20);
        if (i % 16 == 15) { printf("touched %ld MiB\n", i + 1); fflush(stdout); }
    }
    printf("touched %ld MiB\n", mib);
    return 0;
}

static int forks(int n) {
    int ok = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) { sleep(3); _exit(0); }
        if (p < 0) failed++; else ok++;
    }
    printf("forks ok %d failed %d\n", ok, failed);
    fflush(stdout);
    while (wait(NULL) > 0) {}
    return 0;
}

static int burn(int secs) {
    time_t end = time(NULL) + secs;
    volatile unsigned long x = 0;
    while (time(NULL) < end) x++;
    printf("burned %d s\n", secs);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "mem")) return mem(atol(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "fork")) return forks(atoi(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "burn")) return burn(atoi(argv[2]));
    if (argc >= 2 && !strcmp(argv[1], "landlock")) {
        long abi = syscall(444 /* landlock_create_ruleset */, NULL, 0, 1UL /* VERSION */);
        printf("landlock %ld\n", abi < 0 ? 0 : abi);
        return 0;
    }
    fprintf(stderr, "usage: probe mem MIB | fork N | burn SECS | landlock\n");
    return 2;
}
