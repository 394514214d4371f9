#!/bin/sh
# AppArmor: a profile that denies user namespaces (what Ubuntu's
# restriction does to every unconfined program) must be named as the cause
# by doctor and by a run; the shipped profile loads where its AppArmor
# version is supported and lets cage run.
. /mnt/share/lib.sh
parser=$(apparmor_parser --version | head -1)
echo "$parser"
cat > /etc/apparmor.d/cage-test-deny <<'P'
abi <abi/4.0>,
include <tunables/global>
profile cage-test-deny flags=(attach_disconnected) {
  all,
  deny userns,
}
P
if apparmor_parser -r /etc/apparmor.d/cage-test-deny 2>/dev/null; then
    as-tester aa-exec -p cage-test-deny -- cage doctor > $out 2>&1
    check "doctor under a userns-denying profile names AppArmor" has "AppArmor"
    check "and the profile it runs under" has "cage-test-deny"
    as-tester aa-exec -p cage-test-deny -- cage --no-project-policy -- true > $out 2>&1
    rc=$?
    check "a run is refused (125)" status_is 125
    check "and names AppArmor as the cause" has "AppArmor"
    graded_selftest "AppArmor deny userns" aa-exec -p cage-test-deny --
    sed 's|@CAGE@|/usr/local/bin/cage|' /mnt/share/apparmor-cage > /etc/apparmor.d/cage
    apparmor_parser -r /etc/apparmor.d/cage > $out 2>&1
    rc=$?
    check "the shipped profile loads ($parser)" status_is 0
    run_cage --no-project-policy -- cat /proc/self/attr/current
    check "cage runs under it" status_is 0
else
    # AppArmor 3: no userns rules at all, so nothing can deny them either.
    sed 's|@CAGE@|/usr/local/bin/cage|' /mnt/share/apparmor-cage > /etc/apparmor.d/cage
    apparmor_parser -r /etc/apparmor.d/cage > $out 2>&1
    rc=$?
    check "the shipped profile is refused by AppArmor 3 ($parser), as documented" sh -c "[ $rc != 0 ]"
    run_cage doctor
    check "doctor says user namespaces are available (AppArmor 3 does not mediate them)" has "user namespaces *available"
fi
finish
