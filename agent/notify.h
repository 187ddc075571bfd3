/* notify.h — telling systemd how the agent is (sd_notify protocol). */
#ifndef BERTH_NOTIFY_H
#define BERTH_NOTIFY_H

#include <stdint.h>

/* Sends msg ("READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1") to
 * $NOTIFY_SOCKET (a path, or @name in the abstract namespace); nothing when
 * it is not set.  Never blocks, never fails (a lost message is logged at
 * debug level). */
void sd_notify_send(const char *msg);
/* WatchdogSec= as sd_watchdog_enabled() reads it ($WATCHDOG_USEC, for us
 * when $WATCHDOG_PID is unset or our pid): ns, 0 when off. */
int64_t sd_watchdog_ns(void);

#endif
