#!/usr/bin/env bash
# A one-node SLURM cluster with accounting on this machine, for the study tests
# (tests/test_study_slurm.py). Debian/Ubuntu packages, run as root, no systemd.
#
# Idempotent: a cluster that already answers (sinfo shows the node, sacct works) is left
# alone; a missing piece is installed or started. Exit 0 when `sinfo` shows this node idle
# or mixed/allocated and `sacct` answers; anything else exits non-zero with one line why.
#
#   munged (munge user) -> mariadb (mysqld_safe) -> slurmdbd -> slurmctld -> slurmd
set -euo pipefail

say() { echo "start-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (it writes /etc/slurm and starts daemons)"
HOST=$(hostname -s)
CLUSTER=allotest
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)

healthy() {
    sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)' &&
        sacct -n -X -S now-1minutes >/dev/null 2>&1
}
if healthy; then
    say "a cluster is already running on $HOST"
    exit 0
fi

# 1. packages --------------------------------------------------------------------------
missing=()
for pkg_cmd in slurm-wlm:slurmctld slurm-wlm:slurmd munge:munged mariadb-server:mysqld_safe \
               slurmdbd:slurmdbd; do
    command -v "${pkg_cmd#*:}" >/dev/null 2>&1 || missing+=("${pkg_cmd%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi

# 2. munge -------------------------------------------------------------------------------
for dir in /run/munge /var/lib/munge /var/log/munge /etc/munge; do
    mkdir -p "$dir" && chown munge:munge "$dir"
done
chmod 0755 /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    pkill -u munge -x munged 2>/dev/null || true
    rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
    su -s /bin/sh munge -c /usr/sbin/munged || die "munged did not start"
    sleep 1
    munge -n | unmunge >/dev/null || die "munge does not answer"
fi

# 3. mariadb + the slurm accounting database --------------------------------------------
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! mysqladmin ping >/dev/null 2>&1; then
    if [ ! -d /var/lib/mysql/mysql ]; then
        mysql_install_db --user=mysql >/dev/null 2>&1 || die "mysql_install_db failed"
    fi
    (setsid mysqld_safe --user=mysql >/dev/null 2>&1 &)
    for _ in $(seq 60); do mysqladmin ping >/dev/null 2>&1 && break; sleep 1; done
    mysqladmin ping >/dev/null 2>&1 || die "mariadb did not start"
fi
mysql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmtest';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" ||
    die "cannot create the slurm database user"

# 4. configuration ---------------------------------------------------------------------
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmtest
StorageLoc=slurm_acct_db
EOF
chmod 600 /etc/slurm/slurmdbd.conf
cat >/etc/slurm/slurm.conf <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobRequeue=1
ReturnToService=2
MinJobAge=600
KillWait=10
SchedulerParameters=defer_batch=0
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

# 5. daemons ----------------------------------------------------------------------------
if ! pgrep -x slurmdbd >/dev/null; then
    slurmdbd || die "slurmdbd did not start (see /var/log/slurm/slurmdbd.log)"
    for _ in $(seq 30); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
fi
sacctmgr -n list cluster format=cluster 2>/dev/null | grep -qw "$CLUSTER" ||
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed"
if ! pgrep -x slurmctld >/dev/null; then
    slurmctld || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
fi
if ! pgrep -x slurmd >/dev/null; then
    slurmd || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
fi
for _ in $(seq 30); do
    healthy && break
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    sleep 1
done
healthy || die "the node is not idle: $(sinfo -h -N -o '%T %E' 2>&1 | head -n 1)"
say "cluster $CLUSTER up on $HOST ($CPUS CPUs)"
