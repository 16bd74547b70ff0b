/* mmap-test: a driver of the later forks, with an mmap member: /dev/NAME (default mmap-tester)
 * offers a page filled with 0x5a, by read() and, where the library serves mmap(2), by mapping
 * the driver's own page. This one shows that such a driver compiles and serves reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/mman.h>
#include "fusd.h"

#define PAGE 4096
static char *page;

static ssize_t page_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	(void)file;
	if (*offset >= PAGE)
		return 0;
	if (length > (size_t)(PAGE - *offset))
		length = PAGE - *offset;
	memcpy(buffer, page + *offset, length);
	*offset += length;
	return length;
}

static int page_mmap(struct fusd_file_info *file, int offset, size_t length, int prot, int flags, void **addr,
		     size_t *out_length)
{
	(void)file, (void)prot, (void)flags;
	if (offset != 0 || length > PAGE)
		return -EINVAL;
	*addr = page;
	*out_length = PAGE;
	return 0;
}

int main(int argc, char *argv[])
{
	struct fusd_file_operations fops = { read: page_read, mmap: page_mmap };
	page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(page, 0x5a, PAGE);
	if (fusd_register(argc > 1 ? argv[1] : "mmap-tester", "mmaptest", "mmap-tester", 0666, NULL, &fops) < 0) {
		perror("fusd_register");
		return 1;
	}
	fusd_run();
	return 0;
}
