# deploy/ova/ova.mk: the appliance image. Included from the top-level Makefile.
#   make ova        build deploy/ova/out/usagemeter.ova (root, minutes; niced)
#   make ova-test   boot it under qemu and check first boot, /healthz, reboot
#                   (installs qemu, xorriso, ovmf when missing; KVM if a probe
#                   boot works, else TCG)
#   make ova-check  both, as a release runs them; the figures (image size,
#                   boot to /healthz per boot, accelerator) are in
#                   deploy/ova/out/ova-test-report.txt
# None is part of `make test`; `go test ./deploy/ova/...` is.
# Logs: deploy/ova/out/build.log, out/ova-test.log, out/serial-boot*.log.

.PHONY: ova ova-test ova-check ova-clean

ova:
	deploy/ova/build.sh

ova-test:
	deploy/ova/ova-test.sh

ova-check:
	deploy/ova/build.sh
	deploy/ova/ova-test.sh
	@sed -n '1,/^$$/p' deploy/ova/out/ova-test-report.txt

ova-clean:
	rm -rf deploy/ova/out /var/tmp/usagemeter-ova
