// SPDX-License-Identifier: GPL-2.0
/*
 * mmap.c - mmap(2) of /dev/<name>: the daemon's shared memory mapped into the caller.
 *
 * Objects
 *   mapping    (struct fusd_map) - one mmap() the daemon answered: its file (a memfd or another
 *              shmem file) and the range of it mapped, the node's file, and its place in the
 *              device's list.  Shared by the VMAs one mmap() becomes (split, fork, mremap),
 *              counted by vm_ops open/close.
 *
 * The flow: fusd_node_mmap() (the caller, mmap_lock held for writing) sends FUSD_OP_MMAP and
 * waits like any call.  The daemon's reply names a descriptor of its own; fusd_map_reply() looks
 * it up in the daemon's context, checks it (shmem, open for what the caller asked, long enough)
 * and holds the file in the request.  The caller's VMA then becomes a VMA of that file
 * (vma_set_file(), vm_pgoff in the file's pages, as dma-buf mappings do), so the file's own
 * truncation, hole punching, reclaim and write seals see it; its fusd_map holds the node's file
 * instead.  No page is mapped yet: fusd_vm_fault() takes each page from the file's page cache (a
 * hole is allocated, as a fault on the memfd itself would) and inserts it under map_lock.
 * MAP_SHARED writes are the file's; MAP_PRIVATE copies a page on its first write.
 *
 * Revocation: when the device goes (unregister, rm --force, the daemon's death),
 * fusd_map_revoke() sets map_revoked under map_lock, so no fault inserts a page afterwards, and
 * zaps the file's pages in the ranges of the device's mappings: the next access gets SIGBUS.  (The
 * daemon's own mappings of those ranges lose their page tables too, and fault them back in.)
 * The memory lives until the last VMA of the mapping goes, never longer.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/refcount.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "fusd_internal.h"

struct fusd_map {
	refcount_t refs;		/* the VMAs */
	struct file *file;		/* the daemon's shmem file */
	struct file *node;		/* the node's file: keeps the device and the module */
	struct list_head dev_node;	/* fdev->maps (map_lock) */
	pgoff_t first;			/* the range of @file mapped */
	pgoff_t pages;
	bool writable;			/* counted in the file's i_mmap_writable */
};

static struct fusd_device *fusd_map_device(const struct fusd_map *map)
{
	const struct fusd_file *ff = map->node->private_data;

	return ff->fdev;
}

void fusd_map_device_init(struct fusd_device *fdev)
{
	init_rwsem(&fdev->map_lock);
	INIT_LIST_HEAD(&fdev->maps);
}

/* @fdev was removed: its mappings, in every process, get SIGBUS from now on. */
void fusd_map_revoke(struct fusd_device *fdev)
{
	struct fusd_map *map;

	down_write(&fdev->map_lock);
	fdev->map_revoked = true;
	list_for_each_entry(map, &fdev->maps, dev_node)
		unmap_mapping_range(map->file->f_mapping, (loff_t)map->first << PAGE_SHIFT,
				    (loff_t)map->pages << PAGE_SHIFT, 0);
	up_write(&fdev->map_lock);
}

/* ---- the daemon's reply ---- */

/* Can @file back the mapping @mreq asks for, up to byte @end? */
static int fusd_map_file_check(struct file *file, const struct fusd_mmap_request *mreq, u64 end)
{
	if (!shmem_file(file))
		return -ENODEV;
	if (!(file->f_mode & FMODE_READ))
		return -EACCES;
	if ((mreq->flags & FUSD_MAP_SHARED) && (mreq->prot & FUSD_PROT_WRITE) &&
	    !(file->f_mode & FMODE_WRITE))
		return -EACCES;
	if (i_size_read(file_inode(file)) < end)
		return -ENXIO;
	return 0;
}

/*
 * The payload (@plen bytes at @ubuf) of a reply to an MMAP request, in the daemon's context:
 * its descriptor is looked up here.  On success the file is held in @req and the reply replaces
 * the request in @req->buf; on failure nothing changed.  An error reply has no payload.
 */
int fusd_map_reply(struct fusd_req *req, const void __user *ubuf, size_t plen)
{
	const struct fusd_mmap_request *mreq = req->buf;
	struct fusd_mmap_reply rep;
	struct file *file;
	int err;

	if (!plen)
		return 0;
	if (copy_from_user(&rep, ubuf, sizeof(rep)))
		return -EFAULT;
	if (rep.flags || rep.offset & ~PAGE_MASK || rep.offset > MAX_LFS_FILESIZE ||
	    mreq->length > MAX_LFS_FILESIZE - rep.offset)
		return -EINVAL;
	if (rep.fd < 0)
		return -EBADF;
	file = fget(rep.fd);
	if (!file)
		return -EBADF;
	err = fusd_map_file_check(file, mreq, rep.offset + mreq->length);
	if (err) {
		fput(file);
		return err;
	}
	req->map_file = file;
	memcpy(req->buf, &rep, sizeof(rep));
	return 0;
}

/* ---- the caller's mapping ---- */

static void fusd_map_put(struct fusd_map *map)
{
	struct fusd_device *fdev = fusd_map_device(map);

	if (!refcount_dec_and_test(&map->refs))
		return;
	down_write(&fdev->map_lock);
	list_del(&map->dev_node);
	up_write(&fdev->map_lock);
	if (map->writable)
		mapping_unmap_writable(map->file->f_mapping);
	fput(map->file);
	atomic_long_dec(&fusd_live_maps);
	fput(map->node);	/* deferred: the module's last code runs before it can go */
	kfree(map);
}

static void fusd_vm_open(struct vm_area_struct *vma)
{
	struct fusd_map *map = vma->vm_private_data;

	refcount_inc(&map->refs);
}

static void fusd_vm_close(struct vm_area_struct *vma)
{
	fusd_map_put(vma->vm_private_data);
}

/*
 * The page at vmf->pgoff of the daemon's file.  Inserted here, under map_lock, rather than
 * returned in vmf->page: the core would map that after we return, where a revocation could not
 * see it.
 */
static vm_fault_t fusd_vm_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct fusd_device *fdev = fusd_map_device(vma->vm_private_data);
	vm_fault_t ret = VM_FAULT_SIGBUS;
	struct page *page;
	int err;

	down_read(&fdev->map_lock);
	if (fdev->map_revoked)
		goto out;
	/* past the file's end (the daemon shrank it): -EINVAL, SIGBUS */
	page = shmem_read_mapping_page(vma->vm_file->f_mapping, vmf->pgoff);
	if (IS_ERR(page)) {
		ret = vmf_error(PTR_ERR(page));
		goto out;
	}
	err = vm_insert_page(vma, vmf->address, page);
	put_page(page);
	ret = !err || err == -EBUSY ? VM_FAULT_NOPAGE : vmf_error(err);	/* -EBUSY: a racing fault */
out:
	up_read(&fdev->map_lock);
	return ret;
}

static const struct vm_operations_struct fusd_vm_ops = {
	.open = fusd_vm_open,
	.close = fusd_vm_close,
	.fault = fusd_vm_fault,
};

static u32 fusd_map_prot(unsigned long vm_flags)
{
	return (vm_flags & VM_READ ? FUSD_PROT_READ : 0) |
	       (vm_flags & VM_WRITE ? FUSD_PROT_WRITE : 0) |
	       (vm_flags & VM_EXEC ? FUSD_PROT_EXEC : 0);
}

/*
 * A shared mapping (VM_SHARED: of a node open for writing) counts in the daemon's file as a
 * writable mapping of it, as mmap() of the memfd would: refused when the file is sealed against
 * writes (EPERM), and a write seal then fails with EBUSY while it exists.  Held from here, before
 * the VMA is linked into the file, to its end.  A file the daemon cannot write (read-only,
 * F_SEAL_FUTURE_WRITE) takes a read-only mapping only, which can never become writable.
 */
static int fusd_map_writable(struct fusd_map *map, struct vm_area_struct *vma)
{
	struct file *file = map->file;
	bool may_write = (file->f_mode & FMODE_WRITE) &&
			 !(SHMEM_I(file_inode(file))->seals & F_SEAL_FUTURE_WRITE);

	if (!(vma->vm_flags & VM_SHARED))
		return 0;
	if (!may_write && (vma->vm_flags & VM_WRITE))
		return -EPERM;
	if (mapping_map_writable(file->f_mapping))
		return -EPERM;
	map->writable = true;
	if (!may_write)
		vma->vm_flags &= ~VM_MAYWRITE;
	return 0;
}

/* Turn @vma into a mapping of the daemon's file that @req's reply named. */
static int fusd_map_setup(struct fusd_map *map, struct fusd_req *req, struct file *node,
			  struct vm_area_struct *vma)
{
	const struct fusd_mmap_reply *rep = req->buf;
	struct fusd_device *fdev = req->fdev;
	int err;

	map->file = req->map_file;
	req->map_file = NULL;
	map->first = rep->offset >> PAGE_SHIFT;
	map->pages = vma_pages(vma);
	err = fusd_map_writable(map, vma);
	if (err)
		goto out_file;
	down_write(&fdev->map_lock);
	if (fdev->map_revoked)
		err = -ENODEV;
	else
		list_add(&map->dev_node, &fdev->maps);
	up_write(&fdev->map_lock);
	if (err)
		goto out_writable;
	refcount_set(&map->refs, 1);
	map->node = get_file(node);
	atomic_long_inc(&fusd_live_maps);
	vma_set_file(vma, map->file);
	vma->vm_pgoff = map->first;
	/* pages of the file inserted counted (vm_insert_page); never grown by mremap */
	vma->vm_flags |= VM_MIXEDMAP | VM_DONTEXPAND;
	vma->vm_private_data = map;
	vma->vm_ops = &fusd_vm_ops;
	return 0;

out_writable:
	if (map->writable)
		mapping_unmap_writable(map->file->f_mapping);
out_file:
	fput(map->file);
	return err;
}

/*
 * mmap(2) of a node: ask the daemon for the memory.  The VFS has checked the prot against the
 * file's open mode (EACCES).  The wait holds the caller's mmap_lock, like any mmap handler's
 * work: a signal ends it.
 */
int fusd_node_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct fusd_file *ff = file->private_data;
	struct fusd_mmap_request *mreq;
	struct fusd_map *map;
	struct fusd_req *req;
	int ret;

	if (READ_ONCE(ff->fdev->chan->minor) < 2)
		return -ENODEV;		/* a daemon that knows no FUSD_OP_MMAP */
	map = kzalloc(sizeof(*map), GFP_KERNEL_ACCOUNT);
	if (!map)
		return -ENOMEM;
	req = fusd_req_new(ff, file, FUSD_OP_MMAP, sizeof(*mreq), sizeof(*mreq),
			   sizeof(struct fusd_mmap_reply));
	if (!req) {
		kfree(map);
		return -ENOMEM;
	}
	mreq = req->buf;
	mreq->offset = (u64)vma->vm_pgoff << PAGE_SHIFT;
	mreq->length = vma->vm_end - vma->vm_start;
	mreq->prot = fusd_map_prot(vma->vm_flags);
	mreq->flags = vma->vm_flags & VM_MAYSHARE ? FUSD_MAP_SHARED : FUSD_MAP_PRIVATE;
	ret = fusd_call(req);
	if (ret > 0 || (!ret && !req->map_file))
		ret = -EIO;		/* cannot happen: the reply was checked */
	if (!ret)
		ret = fusd_map_setup(map, req, file, vma);
	if (ret)
		kfree(map);
	fusd_req_put(req);
	return ret;
}
