#!/usr/bin/env bash
# Ensures Open MPI (mpirun and libmpi.so.40) is installed, for data-parallel training and its
# tests (Ninjax binds Open MPI's libmpi directly; MPI.NET does not work with Open MPI on Linux).
# Idempotent: does nothing if both are there. On Debian or Ubuntu as root it installs
# openmpi-bin and libopenmpi-dev with apt; elsewhere it says what to install and exits 0, so the
# rest of the set-up goes on (only data-parallel training and its tests need Open MPI).
set -uo pipefail

has_libmpi() {
  ldconfig -p 2>/dev/null | grep -q 'libmpi\.so\.40 ' && return 0
  for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64/openmpi/lib /usr/lib/openmpi/lib /usr/local/lib; do
    [[ -e "$d/libmpi.so.40" ]] && return 0
  done
  return 1
}

if command -v mpirun >/dev/null 2>&1 && has_libmpi; then
  echo "setup-mpi: $(mpirun --version 2>/dev/null | head -1) and libmpi.so.40 found; nothing to do."
  exit 0
fi

id_like=""
if [[ -r /etc/os-release ]]; then
  id_like=$(. /etc/os-release && echo "${ID:-} ${ID_LIKE:-}")
fi

if [[ "$id_like" == *debian* || "$id_like" == *ubuntu* ]] && [[ "$(id -u)" -eq 0 ]]; then
  echo "setup-mpi: installing Open MPI (openmpi-bin, libopenmpi-dev) with apt..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y openmpi-bin libopenmpi-dev || { apt-get update && apt-get install -y openmpi-bin libopenmpi-dev; }
  if command -v mpirun >/dev/null 2>&1 && has_libmpi; then
    echo "setup-mpi: done; $(mpirun --version | head -1)."
    exit 0
  fi
  echo "setup-mpi: ERROR: apt installed Open MPI but mpirun or libmpi.so.40 is still missing." >&2
  exit 1
fi

cat >&2 <<MSG
setup-mpi: WARNING: Open MPI was not found (mpirun and libmpi.so.40), and it is installed
automatically only on Debian or Ubuntu as root. Data-parallel training and its tests need it:
  Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev
  Fedora/RHEL:   dnf install openmpi   (then: module load mpi/openmpi-x86_64)
(Linux only: Ninjax loads Open MPI's libmpi.so.40.)
Everything else builds and runs without it.
MSG
exit 0
