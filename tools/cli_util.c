// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "proto/ctl.h"
#include "proto/path.h"

extern char **environ;

int cli_fail(const char *what, int err)
{
	fprintf(stderr, "pgroup: %s: %s\n", what, pg_strerror(err));
	return 1;
}

void cli_json_str(const char *s, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* pgroupd beside our own binary (a build tree), else on PATH. */
static void daemon_path(char *out, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			snprintf(out, cap, "%s/pgroupd", self);
			if (access(out, X_OK) == 0)
				return;
		}
	}
	snprintf(out, cap, "pgroupd");
}

static int start_daemon(void)
{
	char bin[PATH_MAX + 16];
	daemon_path(bin, sizeof(bin));
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID);
	char *argv[] = {bin, NULL};
	pid_t pid;
	int rc = posix_spawnp(&pid, bin, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc)
		return -rc;
	fprintf(stderr, "pgroup: no daemon was running; started %s (pid %d)\n", bin, (int)pid);
	return 0;
}

int cli_open(struct cli *c, pg_ctx **ctx)
{
	int err = pg_open(ctx, c->socket);
	if ((err == -ENOENT || err == -ECONNREFUSED) && !c->socket) {
		if ((err = start_daemon()))
			return err;
		for (int i = 0; i < 300; i++) {
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
			err = pg_open(ctx, NULL);
			if (err != -ENOENT && err != -ECONNREFUSED)
				break;
		}
	}
	return err;
}

int cli_ctl_open(struct cli *c)
{
	char path[108];
	pg_ctx *ctx;
	/* Through the library first: it finds (or starts) the daemon. */
	int err = cli_open(c, &ctx);
	if (err)
		return err;
	pg_close(ctx);
	if (c->socket)
		snprintf(path, sizeof(path), "%s", c->socket);
	else if ((err = ctl_default_socket(path, sizeof(path))))
		return err;
	return ctl_connect(path);
}

int cli_ctl_ask(int fd, struct ctl_out *req, uint8_t *buf, size_t cap, struct ctl_in *rep)
{
	uint8_t type = req->buf[3];
	int err = ctl_send(fd, req, NULL, 0);
	if (!err) {
		int fds[CTL_MAX_FDS];
		unsigned nfds = 0;
		ssize_t n = ctl_recv(fd, buf, cap, fds, &nfds, 0);
		err = n <= 0 ? (n ? (int)n : -ENOTCONN) : ctl_parse(rep, buf, (size_t)n);
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		if (!err && rep->hdr.type != (type | CTL_REPLY))
			err = -EPROTO;
		if (!err)
			err = rep->hdr.status;
	}
	return err;
}
