#ifndef KVMINI_RUN_H
#define KVMINI_RUN_H

/* `kvmini run ...`: returns the process exit status. */
int cmd_run(int argc, char **argv);
/* `kvmini config show|edit ...` (vmm/config_cmd.c). */
int cmd_config(int argc, char **argv);
/* `kvmini ctl SOCKET COMMAND [--json]` (vmm/ctl_cmd.c). */
/* `kvmini seed`: a cloud-init NoCloud seed image (vmm/seed_cmd.c). */
int cmd_seed(int argc, char **argv);
int cmd_ctl(int argc, char **argv);

#endif
