/* One description of every VM setting: the `kvmini run` flags, the keys of
 * a definition file (vmm/config_file.c), `kvmini config show` and, later,
 * the control socket's status all go through these tables, so a setting's
 * name, default, check and printed form are written once.
 *
 * Setters never print: they return -EINVAL and say why in a buffer, and
 * the caller adds where the value came from ("--cpus 0: ...",
 * "vm.conf:3: cpus = 0: ..."). Checks that need more than one setting (a
 * kernel is required, two NICs on one TAP) are vm_config_validate's. */
#ifndef KVMINI_SETTINGS_H
#define KVMINI_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/config.h"

#define SETTING_WHY_MAX 320

/* Where a value came from, for what depends on it: a relative path in a
 * definition file means the file's directory, not the working directory. */
struct setting_src {
	const char *base_dir;   /* NULL: keep relative paths as given */
};

enum setting_flags {
	SETTING_NOARG = 1,      /* a flag without a value (--no-reboot): means "on" */
	SETTING_COUNT = 2,      /* --verbose: each flag adds one */
};

struct vm_setting {
	const char *key;        /* file key; the flag is --key */
	const char *metavar;    /* value in the help text */
	const char *help;
	unsigned flags;
	int (*set)(struct vm_config *c, const char *value, const struct setting_src *src,
		   char *why);
	/* Prints "key = value" lines (none when unset and without default). */
	void (*show)(const struct vm_config *c, FILE *f);
};

extern const struct vm_setting vm_settings[];
extern const size_t vm_settings_count;
const struct vm_setting *vm_setting_find(const char *key);

struct disk_setting {
	const char *key;
	const char *values;     /* for the help text and error messages */
	int (*set)(struct disk_config *d, const char *value, const struct setting_src *src,
		   char *why);
	void (*show)(const struct disk_config *d, FILE *f);
};
extern const struct disk_setting disk_settings[];
extern const size_t disk_settings_count;
const struct disk_setting *disk_setting_find(const char *key);

/* A disk with every default; the caller adds path= and whatever else. */
void disk_config_init(struct disk_config *d);
/* --disk's text, key=value[,key=value]...: 0, or -EINVAL with why. The
 * disk must be disk_config_init'ed; on error it may hold a path to free
 * (disk_config_free). */
int disk_config_parse(struct disk_config *d, const char *text, const struct setting_src *src,
		      char *why);
void disk_config_free(struct disk_config *d);

/* Every field at its default, nothing owned yet. */
void vm_config_init(struct vm_config *c);
/* Frees what the config owns and re-initialises it (safe to call twice). */
void vm_config_free(struct vm_config *c);
/* Checks across settings; 0 or -EINVAL with why. */
int vm_config_validate(const struct vm_config *c, char *why);
/* The normalised definition: every setting in table order, defaults filled
 * in, one section per disk and NIC. Reading it back gives the same config
 * (and the same text). 0, or -EINVAL with why when a value cannot be
 * written as a definition line (see CONFIG_LINE_MAX). */
int vm_config_show(const struct vm_config *c, FILE *f, char *why);

/* "512M", "2G": the largest unit that divides the size (bytes if none). */
void format_size(uint64_t bytes, char *buf, size_t n);
/* A path made absolute against base (or the working directory when base
 * is NULL and the path is relative); malloc'd, NULL when out of memory. */
char *setting_path(const char *path, const char *base);

/* The longest line a definition file may hold, '\n' not counted. */
#define CONFIG_LINE_MAX 4096

#endif
