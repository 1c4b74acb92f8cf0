/* The control socket (`kvmini run --api-socket PATH`, `kvmini ctl`): a Unix
 * stream socket on the main event loop, one JSON object per line each way
 * (docs/control.md). Lives from process start to exit, across reboots. */
#ifndef KVMINI_CONTROL_H
#define KVMINI_CONTROL_H

struct vmm;
struct control;

/* Binds PATH (mode 0600; a stale socket is replaced, a live one refused)
 * and listens on m's loop. 0, or -EINVAL (reported: in use, bad path) /
 * -errno. */
int control_open(struct control **out, struct vmm *m, const char *path);
/* Closes every connection and removes the socket file. */
void control_close(struct control *c);
/* The VM finished pausing: answer the clients that asked. */
void control_paused(struct control *c);
/* The boot ended before the pause completed: an error to those clients. */
void control_pause_failed(struct control *c, const char *why);

#endif
