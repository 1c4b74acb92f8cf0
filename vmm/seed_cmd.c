/* `kvmini seed --hostname NAME --ssh-key PUBKEYFILE [--user NAME]
 * [--user-data FILE] [--network-config FILE] -o SEED.img`: a cloud-init
 * NoCloud seed volume, what a cloud hands a new instance at first boot.
 * cloud-init finds it by its volume label, `cidata`, and reads meta-data
 * (instance-id, hostname, public keys), user-data and network-config from
 * it. The image is ISO 9660 with Rock Ridge and Joliet, written by libisofs
 * (docs/provisioning.md); attach it with --disk path=SEED.img,readonly=on.
 *
 * Everything given is untrusted input that ends up in YAML a root process
 * parses at boot: the hostname and user name are checked against what a
 * system accepts, a key must be an OpenSSH public key whose blob names its
 * own type, and every value is written as a quoted YAML scalar. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <resolv.h>
#include <stdbool.h>
#include <stdint.h>
/* struct burn_source comes with libisofs.h only when libburn's header is not
 * there to define it (we read the image ourselves, with no libburn). */
#define LIBISOFS_WITHOUT_LIBBURN yes
#include <libisofs/libisofs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/run.h"

#define SEED_KEYFILE_MAX (64 * 1024)
#define SEED_FILE_MAX    (1024 * 1024)
#define SEED_MAX_KEYS    64

static void seed_usage(FILE *f)
{
	fputs("usage: kvmini seed --hostname NAME --ssh-key PUBKEYFILE [--user NAME]\n"
	      "                   [--user-data FILE] [--network-config FILE] -o SEED.img\n"
	      "  a cloud-init NoCloud seed (ISO 9660, label cidata): meta-data with a new\n"
	      "  instance-id, the hostname and the public keys; user-data (made here, or FILE);\n"
	      "  network-config (FILE). Attach it: --disk path=SEED.img,format=raw,readonly=on\n"
	      "  --user NAME   user-data makes NAME (sudo, no password) with the keys;\n"
	      "                without it the keys go to the image's default user\n",
	      f);
}

/* ---- input checks ------------------------------------------------------------- */

/* RFC 1123 host name: labels of letters, digits and inner hyphens. */
static bool hostname_ok(const char *s)
{
	size_t total = strlen(s), label = 0;
	if (total == 0 || total > 253)
		return false;
	for (const char *p = s; ; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 || label > 63 || p[-1] == '-')
				return false;
			if (*p == '\0')
				return true;
			label = 0;
			continue;
		}
		bool alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9');
		if (!alnum && !(*p == '-' && label > 0))
			return false;
		label++;
	}
}

/* What useradd accepts by default (NAME_REGEX in adduser.conf). */
static bool username_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 32 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return false;
	return true;
}

/* Reads a whole file of at most max bytes with no NUL in it. NULL after
 * one error line. */
static char *read_text(const char *what, const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		log_err("%s %s: %s", what, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)max) {
		log_err("%s %s: %s", what, path,
			S_ISREG(st.st_mode) ? "too large" : "not a regular file");
		close(fd);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!buf || got != (size_t)st.st_size) {
		log_err("%s %s: cannot read it", what, path);
		free(buf);
		return NULL;
	}
	buf[got] = '\0';
	if (memchr(buf, '\0', got)) {
		log_err("%s %s: holds NUL bytes (not text)", what, path);
		free(buf);
		return NULL;
	}
	*len = got;
	return buf;
}

static const char *const key_types[] = {
	"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
	"ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
};

/* One authorized_keys-style line, "TYPE BASE64 [COMMENT]" (no options): the
 * type is one OpenSSH knows, the base64 is strict and decodes to a whole key
 * blob that names the same type. NULL if it is one, else why not. */
static const char *key_line_problem(char *line)
{
	char *type = line, *b64 = strchr(line, ' ');
	if (!b64)
		return "not 'TYPE BASE64 [COMMENT]'";
	*b64++ = '\0';
	char *comment = strchr(b64, ' ');
	if (comment)
		*comment++ = '\0';
	bool known = false;
	for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++)
		known |= !strcmp(type, key_types[i]);
	if (!known)
		return !strcmp(type, "ssh-dss") ? "ssh-dss (DSA) keys are obsolete; OpenSSH refuses them"
						: "not a known OpenSSH public key type";
	/* b64_pton (glibc's libresolv) is strict: a bad character, bad padding
	 * or stray bits are errors, where a lenient decoder makes junk into
	 * bytes. */
	size_t cap = strlen(b64) / 4 * 3 + 3;
	unsigned char *blob = malloc(cap);
	if (!blob)
		return "out of memory";
	int n = b64_pton(b64, blob, cap);
	/* Every key type listed is a run of SSH strings (RFC 4251 5: a uint32
	 * big-endian length, then the bytes) that fills the blob exactly: the
	 * type's name first, then at least one field of key material. A key cut
	 * short or with bytes after it is not a key. */
	size_t tl = strlen(type), off = 0, fields = 0;
	bool ok = n >= 0;
	while (ok && off < (size_t)n) {
		if ((size_t)n - off < 4) {
			ok = false;
			break;
		}
		size_t flen = (size_t)blob[off] << 24 | (size_t)blob[off + 1] << 16 |
			      (size_t)blob[off + 2] << 8 | blob[off + 3];
		if (flen > (size_t)n - off - 4 ||
		    (fields == 0 && (flen != tl || memcmp(blob + off + 4, type, tl))))
			ok = false;
		off += 4 + flen;
		fields++;
	}
	ok = ok && fields >= 2;
	free(blob);
	if (n < 0)
		return "the key's base64 is malformed";
	if (!ok)
		return "the key's data does not match its type";
	for (const char *p = comment; p && *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			return "the comment holds control or non-ASCII characters";
	/* Put the spaces back: the line is used as it was given. */
	b64[-1] = ' ';
	if (comment)
		comment[-1] = ' ';
	return NULL;
}

/* The keys of a .pub or authorized_keys file (blank and '#' lines
 * skipped), each a string in keys[]. Returns how many, or -1 after one
 * error line. */
static int read_keys(const char *path, char **keys)
{
	size_t len;
	char *text = read_text("--ssh-key", path, SEED_KEYFILE_MAX, &len);
	if (!text)
		return -1;
	if (strstr(text, "PRIVATE KEY-----")) {
		log_err("--ssh-key %s: this is a private key; give the public one (the .pub file)",
			path);
		free(text);
		return -1;
	}
	int n = 0, lineno = 0;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		size_t l = strlen(line);
		while (l && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
			line[--l] = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#')
			continue;
		const char *why = n == SEED_MAX_KEYS ? "more keys than the 64 a seed takes"
						     : key_line_problem(line);
		if (why) {
			log_err("--ssh-key %s: line %d: not an OpenSSH public key: %s", path, lineno,
				why);
			for (int i = 0; i < n; i++)
				free(keys[i]);
			free(text);
			return -1;
		}
		keys[n++] = strdup(line);
	}
	free(text);
	if (n == 0)
		log_err("--ssh-key %s: no public key in it", path);
	for (int i = 0; i < n; i++)
		if (!keys[i]) {
			log_err("out of memory");
			n = 0;
		}
	return n ? n : -1;
}

/* cloud-init reads user-data by its first line; anything else it would
 * ignore, silently, which is the worst way to learn of a typo. */
static bool user_data_ok(const char *text)
{
	static const char *const heads[] = { "#cloud-config", "#!", "#include", "#cloud-boothook",
					     "#part-handler", "#cloud-config-archive",
					     "Content-Type:" };
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
		if (!strncmp(text, heads[i], strlen(heads[i])))
			return true;
	return false;
}

/* ---- the files ---------------------------------------------------------------- */

/* A YAML double-quoted scalar; the inputs hold no control characters. */
static void yaml_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void yaml_keys(FILE *f, const char *indent, char **keys, int nkeys)
{
	for (int i = 0; i < nkeys; i++) {
		fprintf(f, "%s- ", indent);
		yaml_quoted(f, keys[i]);
		fputc('\n', f);
	}
}

static char *make_meta_data(const char *iid, const char *host, char **keys, int nkeys,
			    size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		return NULL;
	fprintf(f, "instance-id: %s\nlocal-hostname: %s\npublic-keys:\n", iid, host);
	yaml_keys(f, "  ", keys, nkeys);
	return fclose(f) ? (free(buf), NULL) : buf;
}

static char *make_user_data(const char *host, const char *user, char **keys, int nkeys,
			    size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		return NULL;
	fprintf(f, "#cloud-config\n# made by kvmini seed\nhostname: %s\n", host);
	if (user) {
		fprintf(f, "users:\n  - name: %s\n    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n"
			   "    shell: /bin/bash\n    lock_passwd: true\n    ssh_authorized_keys:\n",
			user);
		yaml_keys(f, "      ", keys, nkeys);
	} else {
		fputs("ssh_authorized_keys:\n", f);
		yaml_keys(f, "  ", keys, nkeys);
	}
	return fclose(f) ? (free(buf), NULL) : buf;
}

/* ---- the image ---------------------------------------------------------------- */

struct seed_file {
	const char *name;
	char *data;     /* malloc'd; the image's stream takes it */
	size_t len;
};

static int add_file(IsoImage *img, struct seed_file *sf)
{
	IsoStream *stream;
	IsoFile *file;
	int r = iso_memory_stream_new((unsigned char *)sf->data, sf->len, &stream);
	if (r < 0)
		return r;
	sf->data = NULL; /* the stream owns it now */
	/* On success the file takes over the stream's reference. */
	r = iso_image_add_new_file(img, iso_image_get_root(img), sf->name, stream, &file);
	if (r < 0) {
		iso_stream_unref(stream);
		return r;
	}
	iso_node_set_permissions((IsoNode *)file, 0444);
	return 0;
}

/* Writes the ISO image to fd. 0, or a libisofs error (< 0). */
static int write_image(int fd, struct seed_file *files, int nfiles)
{
	IsoImage *img = NULL;
	IsoWriteOpts *opts = NULL;
	struct burn_source *src = NULL;
	int r = iso_image_new("cidata", &img);
	if (r < 0)
		return r;
	iso_image_set_volume_id(img, "cidata");
	iso_image_set_application_id(img, "kvmini seed");
	for (int i = 0; i < nfiles && r >= 0; i++)
		r = add_file(img, &files[i]);
	if (r >= 0)
		r = iso_write_opts_new(&opts, 0);
	if (r >= 0)
		r = iso_write_opts_set_rockridge(opts, 1);
	if (r >= 0)
		r = iso_write_opts_set_joliet(opts, 1);
	/* "cidata" stays lower case (ISO 9660's d-characters are capitals), as
	 * genisoimage -V cidata writes it and as cloud-init's docs spell it. */
	if (r >= 0)
		r = iso_write_opts_set_relaxed_vol_atts(opts, 1);
	/* Joliet names exactly as given ("meta-data", not "meta-data.;1"), as
	 * genisoimage -J writes them; Rock Ridge carries them for Linux. */
	if (r >= 0)
		r = iso_write_opts_set_omit_version_numbers(opts, 2);
	if (r >= 0)
		r = iso_write_opts_set_no_force_dots(opts, 2);
	if (r >= 0)
		r = iso_image_create_burn_source(img, opts, &src);
	if (r >= 0) {
		unsigned char block[2048];
		int n;
		/* The generator thread fills blocks; reading them all ends it. */
		while ((n = src->read_xt(src, block, sizeof(block))) == (int)sizeof(block))
			if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block)) {
				r = errno ? -errno : -EIO;
				src->cancel(src);
				break;
			}
		if (r >= 0 && n != 0)
			r = ISO_WRITE_ERROR;
		src->free_data(src);
		free(src);
	}
	if (opts)
		iso_write_opts_free(opts);
	iso_image_unref(img);
	return r < 0 ? r : 0;
}

/* ---- the command -------------------------------------------------------------- */

int cmd_seed(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hostname", required_argument, NULL, 'H' },
		{ "ssh-key", required_argument, NULL, 'k' },
		{ "user", required_argument, NULL, 'u' },
		{ "user-data", required_argument, NULL, 'd' },
		{ "network-config", required_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *host = NULL, *keyfile = NULL, *user = NULL, *udfile = NULL, *ncfile = NULL,
		   *out = NULL;
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'H': host = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'u': user = optarg; break;
		case 'd': udfile = optarg; break;
		case 'n': ncfile = optarg; break;
		case 'o': out = optarg; break;
		case 'h': seed_usage(stdout); return 0;
		default:
			log_err("seed: unknown or incomplete option '%s' (see kvmini seed --help)",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		log_err("seed: unexpected '%s' (see kvmini seed --help)", argv[optind]);
		return EXIT_USAGE;
	}
	if (!host || !keyfile || !out) {
		log_err("seed: --hostname, --ssh-key and -o are required (see kvmini seed --help)");
		return EXIT_USAGE;
	}
	if (!hostname_ok(host)) {
		/* Not echoed: it may hold a newline, and the error is one line. */
		log_err("--hostname: not a host name (letters, digits and inner hyphens, "
			"labels of 1 to 63, at most 253 in all)");
		return EXIT_USAGE;
	}
	if (user && !username_ok(user)) {
		log_err("--user: not a user name (a lowercase letter or _, then lowercase "
			"letters, digits, _ or -; at most 32)");
		return EXIT_USAGE;
	}
	if (user && udfile) {
		log_err("seed: --user makes the user-data; with --user-data FILE, create the user "
			"in FILE");
		return EXIT_USAGE;
	}

	int status = EXIT_USAGE;
	char *keys[SEED_MAX_KEYS];
	int nkeys = read_keys(keyfile, keys);
	if (nkeys < 0)
		return EXIT_USAGE;
	struct seed_file files[3] = { { .name = "meta-data" }, { .name = "user-data" },
				      { .name = "network-config" } };
	int nfiles = 2;
	uint8_t rnd[16];
	char iid[4 + 2 * sizeof(rnd) + 1] = "iid-";
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		log_err("seed: getrandom: %s", strerror(errno));
		status = EXIT_FAILURE_VM;
		goto done;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(iid + 4 + 2 * i, 3, "%02x", rnd[i]);
	files[0].data = make_meta_data(iid, host, keys, nkeys, &files[0].len);
	if (udfile) {
		files[1].data = read_text("--user-data", udfile, SEED_FILE_MAX, &files[1].len);
		if (!files[1].data)
			goto done;
		if (!user_data_ok(files[1].data)) {
			log_err("--user-data %s: cloud-init would ignore it: it must start with "
				"#cloud-config, #! or another cloud-init header", udfile);
			goto done;
		}
	} else {
		files[1].data = make_user_data(host, user, keys, nkeys, &files[1].len);
	}
	if (ncfile) {
		files[2].data = read_text("--network-config", ncfile, SEED_FILE_MAX, &files[2].len);
		if (!files[2].data)
			goto done;
		nfiles = 3;
	}
	if (!files[0].data || !files[1].data) {
		log_err("out of memory");
		status = EXIT_FAILURE_VM;
		goto done;
	}

	/* Into a temporary file beside the output, renamed over it when whole. */
	status = EXIT_FAILURE_VM;
	size_t olen = strlen(out);
	char *tmp = malloc(olen + 16);
	if (!tmp) {
		log_err("out of memory");
		goto done;
	}
	snprintf(tmp, olen + 16, "%s.tmp-XXXXXX", out);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		log_err("-o %s: cannot create it: %s", out, strerror(errno));
		free(tmp);
		goto done;
	}
	if (iso_init() < 0) {
		log_err("seed: libisofs does not start");
		close(fd);
		unlink(tmp);
		free(tmp);
		goto done;
	}
	/* Our own error line says what failed; libisofs says nothing itself. */
	iso_set_msgs_severities("NEVER", "NEVER", "kvmini seed");
	int r = write_image(fd, files, nfiles);
	iso_finish();
	if (r < 0)
		log_err("-o %s: cannot write the image: %s", out,
			r == -EIO || r > -4096 ? strerror(-r) : iso_error_to_msg(r));
	else if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, out) < 0)
		log_err("-o %s: %s", out, strerror(errno)), r = -1;
	close(fd);
	if (r < 0)
		unlink(tmp);
	else
		status = 0;
	free(tmp);
done:
	for (int i = 0; i < 3; i++)
		free(files[i].data);
	for (int i = 0; i < nkeys; i++)
		free(keys[i]);
	return status;
}
