/* keyhand.h — the agent opens an encrypted repository's key once and hands
 * it to its jobs over a pipe (keyhand.c). */
#ifndef BERTH_KEYHAND_H
#define BERTH_KEYHAND_H

#include <stdbool.h>

/* The agent, at start: opens settings.repo; when it is encrypted, keeps its
 * master key.  A repository that cannot be opened now is logged, not an
 * error: the jobs then open it themselves. */
int keyhand_open(void);
bool keyhand_held(void);
/* The read end (O_CLOEXEC) of a new pipe holding the kept key, for one job;
 * -1 when none is kept. */
int keyhand_pipe(void);
/* Every berth, first thing: takes the key a parent handed over in
 * BERTH_KEY_FD (a pipe), closes it and unsets the variable. */
void keyhand_receive(void);
void keyhand_clear(void);

#endif
