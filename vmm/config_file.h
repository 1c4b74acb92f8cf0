/* VM definition files (docs/config.md): INI read with libinih. Top-level
 * keys are the VM settings of vmm/settings.c; each [disk] and [net]
 * section is one device with the keys of --disk and --net. */
#ifndef KVMINI_CONFIG_FILE_H
#define KVMINI_CONFIG_FILE_H

#include "vmm/config.h"

/* Applies the file at path on top of what cfg holds (flags given later
 * override it; its devices are added). shown names the file in messages
 * (NULL: path); relative paths inside mean base_dir (NULL: the file's own
 * directory). Returns 0, or -EINVAL after one line "FILE:LINE: ..." (also
 * for a file that cannot be read: "FILE: ..."). cfg may then hold part of
 * the file: the caller frees it. */
int config_file_load(struct vm_config *cfg, const char *path, const char *shown,
		     const char *base_dir);

#endif
