"""What /proc says of a process (Linux): the lab's CPU accounting reads it in one way."""
import os


def stat_fields(pid):
    """/proc/PID/stat after the command name: fields[0] is the state, [3] the session id,
    [11] and [12] user and system time in clock ticks. Raises OSError when it is gone."""
    with open("/proc/%s/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(fields):
    """User + system CPU seconds from stat_fields()."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
