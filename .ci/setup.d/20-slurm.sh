#!/usr/bin/env bash
# Installs what the real-Slurm tests of wlm/slurm need: munge, slurmctld,
# slurmd, the client commands, slurmrestd and its JWT plugin (Debian 12
# packages of Slurm 22.05). Nothing is started here: each test starts and
# stops its own cluster (wlm/slurm/slurmtest). Runs as root, before
# `go test -race ./...`; does nothing when everything is already there.
set -euo pipefail

missing=()
for prog in munged slurmctld slurmd scontrol sinfo squeue sbatch scancel slurmrestd; do
	command -v "$prog" >/dev/null 2>&1 || missing+=("$prog")
done
dpkg-query -W -f='${Status}' slurm-wlm-jwt-plugin 2>/dev/null | grep -q 'install ok installed' || missing+=(slurm-wlm-jwt-plugin)

if [ ${#missing[@]} -eq 0 ]; then
	echo "slurm: already installed (slurmctld $(dpkg-query -W -f='${Version}' slurmctld))"
	exit 0
fi
echo "slurm: missing ${missing[*]}; installing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	munge slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin >/dev/null
echo "slurm: installed slurmctld $(dpkg-query -W -f='${Version}' slurmctld)"
