/* probe: small, static actions the VM tier runs inside a cage, where the
 * guest has no compiler or interpreter.
 *
 *   probe mem MIB      allocates and touches MIB MiB; prints "touched N MiB"
 *                      as it goes (an OOM kill ends it early)
 *   probe fork N       keeps up to N children alive at once for 3 s; prints
 *                      "forks ok A failed B"
 *   probe burn SECS    spins on the CPU for SECS seconds of wall time
 *   probe landlock     prints the kernel's Landlock ABI ("landlock 0": none)
 *   probe unix PATH    connects to the unix socket PATH
 *   probe tcp PORT     connects to 127.0.0.1:PORT
 *   probe udp PORT     sends a datagram to 127.0.0.1:PORT
 *   probe listen PORT SECS  listens on 127.0.0.1:PORT for SECS seconds
 * The connecting ones print "ALLOWED: WHAT" or "REFUSED: WHAT (error)".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
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

static int verdict(const char *what, int ok) {
    if (ok) printf("ALLOWED: %s\n", what);
    else printf("REFUSED: %s (%s)\n", what, strerror(errno));
    return ok ? 0 : 1;
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int net(const char *kind, const char *arg) {
    if (!strcmp(kind, "unix")) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        strncpy(a.sun_path, arg, sizeof a.sun_path - 1);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        return verdict("unix connect", s >= 0 && connect(s, (void *)&a, sizeof a) == 0);
    }
    struct sockaddr_in a = loopback(atoi(arg));
    if (!strcmp(kind, "tcp")) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        return verdict("tcp connect", s >= 0 && connect(s, (void *)&a, sizeof a) == 0);
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    return verdict("udp send", s >= 0 && sendto(s, "x", 1, 0, (void *)&a, sizeof a) == 1);
}

static int listen_for(int port, int secs) {
    struct sockaddr_in a = loopback(port);
    int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, (void *)&a, sizeof a) || listen(s, 8)) { perror("listen"); return 1; }
    sleep(secs);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && (!strcmp(argv[1], "unix") || !strcmp(argv[1], "tcp") || !strcmp(argv[1], "udp")))
        return net(argv[1], argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "listen")) return listen_for(atoi(argv[2]), atoi(argv[3]));
    if (argc >= 3 && !strcmp(argv[1], "mem")) return mem(atol(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "fork")) return forks(atoi(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "burn")) return burn(atoi(argv[2]));
    if (argc >= 2 && !strcmp(argv[1], "landlock")) {
        long abi = syscall(444 /* landlock_create_ruleset */, NULL, 0, 1UL /* VERSION */);
        printf("landlock %ld\n", abi < 0 ? 0 : abi);
        return 0;
    }
    fprintf(stderr, "usage: probe mem MIB | fork N | burn SECS | landlock | unix PATH | tcp PORT | udp PORT | listen PORT SECS\n");
    return 2;
}
