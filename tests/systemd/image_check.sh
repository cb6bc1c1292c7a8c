#!/bin/sh
# Runs inside a booted Roost image (tests/systemd/test_booted_image.py installs it as a oneshot unit):
# checks Roost's units under the image's real systemd and prints one "ROOSTCHECK key: ..." line per check
# on the console, then powers the guest off.
say() { echo "ROOSTCHECK $*"; }
show() { systemctl show roost-gateway -p ActiveState -p SubState -p StatusText -p NRestarts -p MainPID -p WatchdogUSec -p Result | tr '\n' ' '; echo; }
sleep 20
for i in $(seq 1 60); do [ "$(systemctl show -p ActiveState --value roost-gateway)" = active ] && break; sleep 2; done
say "state: $(show)"
say "firstboot: $(systemctl show roost-firstboot -p ActiveState -p Result | tr '\n' ' ')"
say "security: $(systemd-analyze security roost-gateway.service 2>&1 | tail -1)"
say "groups: $(grep -E '^(Groups|CapEff|CapAmb|CapBnd|NoNewPrivs|Seccomp)' /proc/$(systemctl show -p MainPID --value roost-gateway)/status | tr '\t\n' '  ')"
say "journal fields: $(journalctl -u roost-gateway -o verbose -n 50 --no-pager | grep -E '^ +(LOGGER|CODE_FUNC|SYSLOG_IDENTIFIER|PRIORITY)=' | sort | uniq -c | head -8 | tr '\n' ';')"
say "verify: $(systemd-analyze verify roost-gateway.service roost-firstboot.service roost-priv@reboot.service roost-cloud.service 2>&1 | tr '\n' ';')"
as_roost() { out=$(runuser -u roost -- systemctl "$@" 2>&1); rc=$?; echo "$out rc=$rc" | tr '\n' ' '; }
say "polkit bogus: $(as_roost --no-block start roost-priv@bogus.service)"
say "polkit stop: $(as_roost stop roost-gateway.service)"
say "polkit ssh.service: $(as_roost --no-block start ssh.service)"
before=$(systemctl show -p MainPID --value roost-gateway)
say "polkit restart: $(as_roost --no-block start roost-priv@restart.service)"
for i in $(seq 1 60); do now=$(systemctl show -p MainPID --value roost-gateway); st=$(systemctl show -p ActiveState --value roost-gateway); [ "$now" != "$before" ] && [ "$st" = active ] && break; sleep 1; done
say "after restart: pid $before -> $(systemctl show -p MainPID --value roost-gateway) $(show)"
say "priv@restart: $(systemctl show roost-priv@restart -p Result -p ExecMainStatus | tr '\n' ' ')"
pid=$(systemctl show -p MainPID --value roost-gateway)
kill -STOP "$pid"
say "stopped pid $pid with SIGSTOP; waiting for the watchdog"
for i in $(seq 1 70); do [ "$(systemctl show -p MainPID --value roost-gateway)" != "$pid" ] && [ "$(systemctl show -p ActiveState --value roost-gateway)" = active ] && break; sleep 1; done
say "after watchdog: $(show)"
say "watchdog log: $(journalctl -u roost-gateway --no-pager -n 200 | grep -i -E 'watchdog|Main process exited' | tail -3 | tr '\n' ';')"
say "DONE"
systemctl poweroff
