/* ioctl: a self-checking test of ioctls through the classic API. The program forks: the child
 * serves /dev/NAME (default ioctltest), the parent calls each kind of ioctl on it and checks the
 * answers: _IO with no argument, _IO with an integer argument (by value), an error returned as
 * errno, _IOR (data to the caller), _IOW (data from the caller), _IOWR (both ways), and last a
 * request that makes the driver exit in the middle of the call. Prints "N errors" and exits 0
 * when N is 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include "fusd.h"

struct message {
	char text[48];
	int number;
};

#define TEST_MAGIC 'Q'
#define TEST_PING _IO(TEST_MAGIC, 0)                    /* returns 0 */
#define TEST_TWICE _IO(TEST_MAGIC, 1)                   /* returns 2 * the integer argument */
#define TEST_FAIL _IO(TEST_MAGIC, 2)                    /* fails with the argument as errno */
#define TEST_GET _IOR(TEST_MAGIC, 3, struct message)    /* fills the message */
#define TEST_PUT _IOW(TEST_MAGIC, 4, struct message)    /* checks the message */
#define TEST_SHOUT _IOWR(TEST_MAGIC, 5, struct message) /* upper-cases the text, adds 1 */
#define TEST_EXIT _IO(TEST_MAGIC, 6)                    /* the driver exits during the call */

static int server_errors;

static int test_ioctl(struct fusd_file_info *file, int request, void *data)
{
	struct message *m = data;
	char *c;
	(void)file;
	switch (request) {
	case TEST_PING:
		return 0;
	case TEST_TWICE:
		return 2 * (int)(long)data;
	case TEST_FAIL:
		return -(int)(long)data;
	case TEST_GET:
		snprintf(m->text, sizeof m->text, "from the driver");
		m->number = 42;
		return 0;
	case TEST_PUT:
		if (strcmp(m->text, "to the driver") != 0 || m->number != 7)
			server_errors++;
		return 0;
	case TEST_SHOUT:
		for (c = m->text; *c; c++)
			*c = toupper((unsigned char)*c);
		m->number++;
		return 0;
	case TEST_EXIT:
		exit(server_errors);
	}
	return -ENOTTY;
}

static int errors;
#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			printf("FAILED: %s (errno %d)\n", #cond, errno); \
			errors++; \
		} \
	} while (0)

int main(int argc, char *argv[])
{
	const char *name = argc > 1 ? argv[1] : "/dev/ioctltest";
	char path[256];
	struct message m;
	int fd = -1, i, status;
	pid_t server;

	snprintf(path, sizeof path, "%s%s", name[0] == '/' ? "" : "/dev/", name);
	server = fork();
	if (server < 0) {
		perror("fork");
		return 1;
	}
	if (server == 0) {
		struct fusd_file_operations fops = { ioctl: test_ioctl };
		if (fusd_register(name, "misc", "ioctltest", 0666, NULL, &fops) < 0) {
			perror("fusd_register");
			exit(1);
		}
		fusd_run();
		exit(1);
	}
	for (i = 0; i < 600 && fd < 0; i++) { /* the node appears once the child has registered */
		fd = open(path, O_RDWR);
		if (fd < 0)
			usleep(100000);
	}
	if (fd < 0) {
		perror(path);
		kill(server, SIGTERM);
		return 1;
	}
	CHECK(ioctl(fd, TEST_PING) == 0);
	CHECK(ioctl(fd, TEST_TWICE, 21) == 42);
	errno = 0;
	CHECK(ioctl(fd, TEST_FAIL, EDOM) == -1 && errno == EDOM);
	memset(&m, 0, sizeof m);
	CHECK(ioctl(fd, TEST_GET, &m) == 0 && strcmp(m.text, "from the driver") == 0 && m.number == 42);
	memset(&m, 0, sizeof m);
	snprintf(m.text, sizeof m.text, "to the driver");
	m.number = 7;
	CHECK(ioctl(fd, TEST_PUT, &m) == 0);
	snprintf(m.text, sizeof m.text, "quiet words");
	m.number = 9;
	CHECK(ioctl(fd, TEST_SHOUT, &m) == 0 && strcmp(m.text, "QUIET WORDS") == 0 && m.number == 10);
	errno = 0;
	i = ioctl(fd, TEST_EXIT);
	printf("a call in flight when the driver exits: %d, %s\n", i, strerror(errno));
	CHECK(i == -1);
	if (waitpid(server, &status, 0) != server || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAILED: the driver's own checks (status %#x)\n", status);
		errors++;
	}
	close(fd);
	printf("%d errors\n", errors);
	return errors ? 1 : 0;
}
