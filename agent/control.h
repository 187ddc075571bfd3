/* control.h — the agent's control socket (server side; the client is
 * control_request() in agent.h). */
#ifndef BERTH_CONTROL_H
#define BERTH_CONTROL_H

#include <json-c/json.h>
#include <stdbool.h>

/* Creates path's directory (0755) and listens on path (0600), non-blocking;
 * refuses when another agent answers there. */
int control_listen(const char *path, int *ret_fd);
/* Accepts one client (2 s read and write timeouts); *ret_allowed: its
 * SO_PEERCRED uid is 0 or ours.  Returns the fd or -errno. */
int control_accept(int lfd, bool *ret_allowed);
/* Reads one request line: a JSON object. */
int control_read_request(int fd, json_object **ret);
/* Writes o and a newline, and frees o. */
void control_reply(int fd, json_object *o);

#endif
