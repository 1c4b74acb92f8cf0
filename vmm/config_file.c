/* Definition files: libinih splits lines into sections and key = value
 * pairs; this file says what they mean. The text is untrusted: every
 * mistake is one line naming the file, the line and the key, and the
 * first one ends the parse (exit 2 for the caller).
 *
 * libinih calls us per key, without line numbers and without telling us
 * where a section starts; so it reads its lines through config_reader,
 * which counts them and sees each "[section]" header first. That is how
 * two [disk] sections in a row are two disks, and how an empty [disk] is
 * caught. */
#include "vmm/config_file.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net_config.h"
#include "vmm/log.h"
#include "vmm/settings.h"

enum section { SEC_TOP, SEC_DISK, SEC_NET };

struct loader {
	struct vm_config *cfg;
	FILE *file;
	const char *shown;
	struct setting_src src;
	char *line;                 /* getline's buffer */
	size_t line_cap;
	unsigned lineno;
	bool failed;                /* one error reported: ignore the rest */
	unsigned top_seen[32];      /* line of each VM setting, to refuse repeats */
	enum section sec;
	unsigned sec_line;          /* where the current section started */
	/* [disk]: the keys seen (line numbers), in disk_settings order */
	unsigned disk_seen[16];
	/* [net]: "user" or "tap=NAME" first, then the other keys */
	char net_kind[IFNAMSIZ + 8];
	char net_rest[4096];
	size_t net_len;
	/* where each [net] key was, to point an error at its line */
	struct { unsigned line; unsigned at; } net_keys[48];
	unsigned nnet_keys;
};

/* net_config_parse_why names the key and value it refuses; the line that
 * holds both is the one to blame, else the section's first line. */
static unsigned net_error_line(const struct loader *l, const char *why)
{
	for (unsigned i = 0; i < l->nnet_keys; i++) {
		char key[64];
		const char *item = l->net_rest + l->net_keys[i].at;
		const char *eq = strchr(item, '=');
		const char *end = strchr(item, ',');
		size_t vlen = end ? (size_t)(end - eq - 1) : strlen(eq + 1);
		char val[128];
		snprintf(key, sizeof(key), "%.*s", (int)(eq - item), item);
		snprintf(val, sizeof(val), "%.*s", (int)vlen, eq + 1);
		char quoted[68];
		snprintf(quoted, sizeof(quoted), "'%s'", key);
		if ((*val && strstr(why, key) && strstr(why, val)) || strstr(why, quoted))
			return l->net_keys[i].line;
	}
	return l->sec_line;
}

static int fail(struct loader *l, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct loader *l, unsigned line, const char *fmt, ...)
{
	if (l->failed)
		return -EINVAL;
	char msg[SETTING_WHY_MAX + 128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		log_err("%s:%u: %s", l->shown, line, msg);
	else
		log_err("%s: %s", l->shown, msg);
	l->failed = true;
	return -EINVAL;
}

/* The section that just ended: what only the whole section can check. */
static int finish_section(struct loader *l)
{
	struct vm_config *c = l->cfg;
	if (l->failed)
		return -EINVAL;
	if (l->sec == SEC_DISK && !c->disks[c->ndisks - 1].block.path)
		return fail(l, l->sec_line, "[disk] needs path = FILE");
	if (l->sec == SEC_NET) {
		if (!l->net_kind[0])
			return fail(l, l->sec_line, "[net] needs user = on or tap = NAME");
		char text[sizeof(l->net_kind) + sizeof(l->net_rest)];
		snprintf(text, sizeof(text), "%s%s", l->net_kind, l->net_rest);
		char why[NET_WHY_MAX];
		int r = net_config_parse_why(&c->nics[c->nnics], text, why);
		if (r == -EINVAL)
			return fail(l, net_error_line(l, why), "[net]: %s", why);
		if (r)
			return fail(l, l->sec_line, "[net]: %s", strerror(-r));
		c->nnics++;
	}
	return 0;
}

static int start_section(struct loader *l, const char *name)
{
	struct vm_config *c = l->cfg;
	if (finish_section(l))
		return -EINVAL;
	l->sec_line = l->lineno;
	if (!strcmp(name, "disk")) {
		if (c->ndisks == CONFIG_MAX_DISKS)
			return fail(l, l->lineno, "too many disks (at most %d)", CONFIG_MAX_DISKS);
		disk_config_init(&c->disks[c->ndisks++]);
		memset(l->disk_seen, 0, sizeof(l->disk_seen));
		l->sec = SEC_DISK;
	} else if (!strcmp(name, "net")) {
		if (c->nnics == CONFIG_MAX_NICS)
			return fail(l, l->lineno, "too many NICs (at most %d)", CONFIG_MAX_NICS);
		l->net_kind[0] = '\0';
		l->net_rest[0] = '\0';
		l->net_len = 0;
		l->nnet_keys = 0;
		l->sec = SEC_NET;
	} else {
		return fail(l, l->lineno, "unknown section [%.64s] (sections are [disk] and [net])",
			    name);
	}
	return 0;
}

/* libinih's line source: one line per call, counted; section headers are
 * acted on here, before libinih hands us their keys. */
static char *config_reader(char *buf, int size, void *stream)
{
	struct loader *l = stream;
	if (l->failed)
		return NULL;
	errno = 0;
	ssize_t n = getline(&l->line, &l->line_cap, l->file);
	if (n < 0) {
		if (errno)
			fail(l, 0, "cannot read: %s", strerror(errno));
		return NULL;
	}
	l->lineno++;
	if (n > 0 && l->line[n - 1] == '\n')
		l->line[--n] = '\0';
	if ((size_t)n > CONFIG_LINE_MAX || n >= size - 2) {
		fail(l, l->lineno, "line longer than %d characters", CONFIG_LINE_MAX);
		return NULL;
	}
	if (memchr(l->line, '\0', (size_t)n)) {
		fail(l, l->lineno, "a NUL byte (not a text file?)");
		return NULL;
	}
	const char *p = l->line + strspn(l->line, " \t");
	if (*p == '[') {
		const char *end = strchr(p, ']');
		if (end && end[1 + strspn(end + 1, " \t")]) {
			fail(l, l->lineno, "text after the section header");
			return NULL;
		}
		if (end) {
			char name[72];
			snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
			if (start_section(l, name))
				return NULL;
		}
	}
	memcpy(buf, l->line, (size_t)n);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	return buf;
}

static int top_key(struct loader *l, const char *name, const char *value)
{
	const struct vm_setting *s = vm_setting_find(name);
	if (!s) {
		if (!strcmp(name, "disk") || !strcmp(name, "net"))
			return fail(l, l->lineno, "'%s' is a section here: [%s], then its keys",
				    name, name);
		return fail(l, l->lineno, "unknown key '%.64s'", name);
	}
	size_t i = (size_t)(s - vm_settings);
	if (l->top_seen[i])
		return fail(l, l->lineno, "%s given twice (first on line %u)", name, l->top_seen[i]);
	l->top_seen[i] = l->lineno;
	char why[SETTING_WHY_MAX];
	if (s->set(l->cfg, value, &l->src, why))
		return fail(l, l->lineno, "%s = %.96s: %s", name, value, why);
	return 0;
}

static int disk_key(struct loader *l, const char *name, const char *value)
{
	const struct disk_setting *s = disk_setting_find(name);
	if (!s) {
		if (vm_setting_find(name))
			return fail(l, l->lineno, "unknown key '%s' in [disk] (VM settings go "
				    "before the first section)", name);
		return fail(l, l->lineno, "unknown key '%.64s' in [disk]", name);
	}
	size_t i = (size_t)(s - disk_settings);
	if (l->disk_seen[i])
		return fail(l, l->lineno, "%s given twice in this [disk] (first on line %u)", name,
			    l->disk_seen[i]);
	l->disk_seen[i] = l->lineno;
	char why[SETTING_WHY_MAX];
	if (s->set(&l->cfg->disks[l->cfg->ndisks - 1], value, &l->src, why))
		return fail(l, l->lineno, "[disk] %s = %.96s: %s", name, value, why);
	return 0;
}

/* The [net] keys are --net's: collected into its text, which
 * net_config_parse_why checks as a whole when the section ends. */
static int net_key(struct loader *l, const char *name, const char *value)
{
	if (strchr(value, ','))
		return fail(l, l->lineno, "[net] %s: no value of [net] holds a comma", name);
	if (!strcmp(name, "user") || !strcmp(name, "tap")) {
		if (l->net_kind[0])
			return fail(l, l->lineno, "[net] has two of user and tap: one NIC per "
				    "[net] section");
		if (!strcmp(name, "user") && strcmp(value, "on"))
			return fail(l, l->lineno, "[net] user = %.32s: expected user = on", value);
		if (!strcmp(name, "tap") && (!*value || strlen(value) >= IFNAMSIZ))
			return fail(l, l->lineno, "[net] tap = %.32s: a TAP name of 1 to %d "
				    "characters", value, IFNAMSIZ - 1);
		snprintf(l->net_kind, sizeof(l->net_kind), !strcmp(name, "user") ? "user" : "tap=%s",
			 value);
		return 0;
	}
	if (vm_setting_find(name))  /* no VM setting shares a name with a --net key */
		return fail(l, l->lineno, "unknown key '%s' in [net] (VM settings go before the "
			    "first section)", name);
	size_t need = strlen(name) + strlen(value) + 3;
	if (l->net_len + need >= sizeof(l->net_rest) ||
	    l->nnet_keys == sizeof(l->net_keys) / sizeof(l->net_keys[0]))
		return fail(l, l->lineno, "[net] section too long");
	l->net_keys[l->nnet_keys].line = l->lineno;
	l->net_keys[l->nnet_keys++].at = (unsigned)l->net_len + 1;
	l->net_len += (size_t)snprintf(l->net_rest + l->net_len, sizeof(l->net_rest) - l->net_len,
				       ",%s=%s", name, value);
	return 0;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	(void)section;  /* the reader tracked it, per instance */
	struct loader *l = user;
	if (l->failed)
		return 1;
	switch (l->sec) {
	case SEC_TOP: top_key(l, name, value); break;
	case SEC_DISK: disk_key(l, name, value); break;
	case SEC_NET: net_key(l, name, value); break;
	}
	return 1;   /* errors are ours to report, once */
}

/* libinih's knobs, the same for every parse (and parses run on the main
 * thread only): long lines, values taken verbatim (no inline ';'
 * comments), an indented line is a line of its own, not a continuation. */
static void ini_setup(void)
{
	/* A heap line buffer of a fixed size: with use_stack off, libinih
	 * sizes it by initial_alloc (max_line only with realloc on). */
	ini_use_stack = false;
	ini_allow_realloc = false;
	ini_initial_alloc = CONFIG_LINE_MAX + 3;
	ini_max_line = CONFIG_LINE_MAX + 3;
	ini_allow_inline_comments = false;
	ini_allow_multiline = false;
	ini_allow_no_value = false;
	ini_stop_on_first_error = true;
}

int config_file_load(struct vm_config *cfg, const char *path, const char *shown,
		     const char *base_dir)
{
	struct loader l = { .cfg = cfg, .shown = shown ? shown : path };
	if (vm_settings_count > sizeof(l.top_seen) / sizeof(l.top_seen[0]) ||
	    disk_settings_count > sizeof(l.disk_seen) / sizeof(l.disk_seen[0]))
		return fail(&l, 0, "internal: settings tables outgrew the loader");

	/* The file's directory, absolute: its paths must mean the same files
	 * whatever the working directory of a later kvmini run. */
	char dir[PATH_MAX] = "";
	if (!base_dir) {
		const char *slash = strrchr(path, '/');
		if (slash && slash - path + 1 < (long)sizeof(dir))
			snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path + 1), path);
		base_dir = dir;
	}
	while (!strncmp(base_dir, "./", 2))
		base_dir += 2;
	if (!strcmp(base_dir, "."))
		base_dir = "";
	char abs[PATH_MAX];
	if (base_dir[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			return fail(&l, 0, "cannot find the working directory: %s", strerror(errno));
		if ((size_t)snprintf(abs, sizeof(abs), "%s%s%s", cwd, *base_dir ? "/" : "",
				     base_dir) >= sizeof(abs))
			return fail(&l, 0, "path too long");
		base_dir = abs;
	}
	l.src.base_dir = base_dir;

	l.file = fopen(path, "re");
	if (!l.file)
		return fail(&l, 0, "cannot open: %s", strerror(errno));
	ini_setup();
	int r = ini_parse_stream(config_reader, &l, config_handler, &l);
	if (r > 0)
		fail(&l, (unsigned)r, "expected 'key = value', '[disk]' or '[net]'");
	else if (r < 0)
		fail(&l, 0, "out of memory");
	finish_section(&l);
	free(l.line);
	fclose(l.file);
	return l.failed ? -EINVAL : 0;
}
