/*
 * replay.c - run a fuzz target over files, without libFuzzer: the seed
 * corpus and every input that once crashed (test/fuzz/regressions/) run in
 * `make test` with the normal compiler and sanitizer builds.
 *
 *   build/fuzz-replay/fuzz_http FILE|DIR...
 *
 * Prints "<target>: N inputs" and exits 0, or dies in the target.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		return -1;
	}
	uint8_t *buf = malloc(1 << 20);
	size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
	fclose(f);
	if (buf == NULL)
		return -1;
	/* an exactly sized copy, as libFuzzer gives, so overreads show */
	uint8_t *exact = malloc(n ? n : 1);
	memcpy(exact, buf, n);
	free(buf);
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned count = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0)
			continue;   /* an absent regressions dir is fine */
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) != 0)
				return 1;
			count++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		struct dirent *e;
		while (d != NULL && (e = readdir(d)) != NULL) {
			char path[4096];
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (run_file(path) != 0)
				return 1;
			count++;
		}
		if (d != NULL)
			closedir(d);
	}
	printf("%s: %u inputs\n", argv[0], count);
	return count > 0 ? 0 : 1;
}
