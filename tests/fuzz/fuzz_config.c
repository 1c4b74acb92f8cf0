/* Definition files (vmm/config_file.c over libinih, vmm/settings.c,
 * net_config_parse_why): the input is a file's bytes. Checked:
 *   - loading never crashes, and ends in 0 or -EINVAL;
 *   - an accepted, valid definition's show reads back (show of the show)
 *     to the very same text: nothing is lost, nothing changes meaning;
 *   - nothing leaks: vm_config_free frees all a config owns (LeakSanitizer
 *     when fuzzing). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "vmm/config_file.h"
#include "vmm/log.h"
#include "vmm/settings.h"

static void put_file(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, data, size) == (ssize_t)size);
	close(fd);
}

static char *show(const struct vm_config *c, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	char why[SETTING_WHY_MAX];
	FUZZ_CHECK(f && vm_config_show(c, f, why) == 0);
	fclose(f);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dir[] = "/tmp/kvmini-fuzz-config-XXXXXX";
	static char in[64], out[64];
	if (!in[0]) {
		FUZZ_CHECK(mkdtemp(dir));
		snprintf(in, sizeof(in), "%s/in.conf", dir);
		snprintf(out, sizeof(out), "%s/out.conf", dir);
	}
	put_file(in, data, size);
	struct vm_config c;
	vm_config_init(&c);
	int r = config_file_load(&c, in, "in.conf", "/base");
	FUZZ_CHECK(r == 0 || r == -EINVAL);
	char why[SETTING_WHY_MAX];
	if (r == 0 && vm_config_validate(&c, why) == 0) {
		size_t n1, n2;
		char *s1 = show(&c, &n1);
		put_file(out, s1, n1);
		struct vm_config c2;
		vm_config_init(&c2);
		FUZZ_CHECK(config_file_load(&c2, out, "out.conf", "/base") == 0);
		FUZZ_CHECK(vm_config_validate(&c2, why) == 0);
		char *s2 = show(&c2, &n2);
		FUZZ_CHECK(n1 == n2 && !memcmp(s1, s2, n1));
		free(s1);
		free(s2);
		vm_config_free(&c2);
	}
	vm_config_free(&c);
	return 0;
}
