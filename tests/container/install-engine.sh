#!/bin/sh
# The container engine `make test-compose` drives, from Debian's packages, when it is missing:
# podman 4.3 with runc, CNI networking with DNS between containers, and debootstrap for the
# stand-in base images (only used where no image registry answers). Needs root; about 30 s.
set -eu
if command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null; then
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  podman runc conmon containernetworking-plugins golang-github-containernetworking-plugin-dnsname \
  iptables uidmap debootstrap >/dev/null
podman --version
