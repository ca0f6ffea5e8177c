# deploy/ova/ova.mk: the appliance image. Included from the top-level Makefile.
#   make ova        build deploy/ova/out/usagemeter.ova (root, minutes; niced)
#   make ova-test   boot it under qemu and check first boot, /healthz, reboot
# Neither is part of `make test`; `go test ./deploy/ova/...` is.
# Logs: deploy/ova/out/build.log, out/serial-boot*.log, out/ova-test-report.txt.

.PHONY: ova ova-test ova-clean

ova:
	deploy/ova/build.sh

ova-test:
	deploy/ova/ova-test.sh

ova-clean:
	rm -rf deploy/ova/out /var/tmp/usagemeter-ova
