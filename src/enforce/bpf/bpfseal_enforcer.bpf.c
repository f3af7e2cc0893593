// SPDX-License-Identifier: GPL-2.0
/*
 * bpfseal enforcer: a BPF LSM admission policy for BPF_PROG_LOAD.
 *
 * Documentation/bpf/signing.rst (7.3), "The verdict" and "Admission: security_bpf_prog_load()": the
 * kernel verifies a load's PKCS#7 signature before this hook runs and records the outcome in
 * prog->aux->sig (verdict, keyring_type, keyring_serial); the hook sees every load and may refuse it.
 * This program refuses (-EPERM) every load whose verdict is not BPF_SIG_VERIFIED against an allowed
 * keyring, lets through what the kernel itself loads (`kernel`: a verified loader's bpf_sys_bpf), and
 * reports each decision through the `decisions` ring buffer.
 *
 * CO-RE: the kernel structs are declared locally with preserve_access_index (only the fields used),
 * so the kernel relocates the offsets against its own BTF at load (BPF_PROG_LOAD core_relos). Field
 * types are those of 7.2.12 and 7.3.4's BTF: struct bpf_prog_aux { ... struct { s32 keyring_serial;
 * u8 keyring_type; u8 verdict; } sig; ... }. The record layout below is decoded by
 * src/enforce/decisions.ts (ENFORCER_ABI); change both together.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define EPERM 1
#define ENFORCER_ABI 1

/* enum bpf_sig_verdict / enum bpf_sig_keyring (signing.rst, "The verdict", "Keyrings"; vmlinux BTF). */
#define BPF_SIG_VERIFIED 1
#define BPF_SIG_KEYRING_USER 4
#define KEYRING_TYPES 8

struct bpf_prog_aux {
	struct {
		__s32 keyring_serial;
		__u8 keyring_type;
		__u8 verdict;
	} sig;
} __attribute__((preserve_access_index));

struct bpf_prog {
	struct bpf_prog_aux *aux;
} __attribute__((preserve_access_index));

struct bpf_token;

/* Serials of the user/session keyrings whose verified signatures are admitted (keyring_serial). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __s32);
	__type(value, __u8);
	__uint(max_entries, 64);
} allow_serial SEC(".maps");

/* System keyring types admitted (index: enum bpf_sig_keyring; builtin, secondary, platform). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, KEYRING_TYPES);
} allow_type SEC(".maps");

struct counts {
	__u64 seq;     /* decisions made (the last record's seq) */
	__u64 allowed;
	__u64 denied;
	__u64 lost;    /* decisions the ring buffer had no room for */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct counts);
	__uint(max_entries, 1);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} decisions SEC(".maps");

/* One decision, 88 bytes, little-endian (src/enforce/decisions.ts). */
struct decision {
	__u32 abi;
	__u32 pid;            /* tgid of the loading process */
	__u64 seq;
	__u64 boot_ns;        /* bpf_ktime_get_boot_ns() */
	__u32 tid;
	__u32 uid;
	__u32 prog_type;      /* attr->prog_type */
	__u32 insn_cnt;       /* attr->insn_cnt */
	__s32 keyring_serial;
	__u8 verdict;
	__u8 keyring_type;
	__u8 kernel;
	__u8 allowed;
	__s32 ret;
	__u32 pad;
	char comm[16];
	char name[16];        /* attr->prog_name */
};

static __always_inline int admit(__u8 verdict, __u8 ktype, __s32 serial, bool kernel)
{
	__u32 t = ktype;

	if (kernel)
		return 0; /* loaded by the kernel: a verified loader's bpf_sys_bpf (signing.rst, "The trusted loader") */
	if (verdict != BPF_SIG_VERIFIED)
		return -EPERM;
	if (ktype == BPF_SIG_KEYRING_USER)
		return serial != 0 && bpf_map_lookup_elem(&allow_serial, &serial) ? 0 : -EPERM;
	if (t < KEYRING_TYPES) {
		__u8 *ok = bpf_map_lookup_elem(&allow_type, &t);
		if (ok && *ok)
			return 0;
	}
	return -EPERM;
}

SEC("lsm/bpf_prog_load")
int BPF_PROG(bpfseal_admit, struct bpf_prog *prog, union bpf_attr *attr, struct bpf_token *token, bool kernel)
{
	__u8 verdict = prog->aux->sig.verdict;
	__u8 ktype = prog->aux->sig.keyring_type;
	__s32 serial = prog->aux->sig.keyring_serial;
	int ret = admit(verdict, ktype, serial, kernel);
	__u32 zero = 0;
	struct counts *c = bpf_map_lookup_elem(&counts, &zero);
	struct decision *d;
	__u64 seq = 0, id;

	if (c) {
		seq = __sync_fetch_and_add(&c->seq, 1) + 1;
		if (ret)
			__sync_fetch_and_add(&c->denied, 1);
		else
			__sync_fetch_and_add(&c->allowed, 1);
	}
	d = bpf_ringbuf_reserve(&decisions, sizeof(*d), 0);
	if (!d) {
		if (c)
			__sync_fetch_and_add(&c->lost, 1);
		return ret;
	}
	id = bpf_get_current_pid_tgid();
	d->abi = ENFORCER_ABI;
	d->pid = id >> 32;
	d->tid = (__u32)id;
	d->seq = seq;
	d->boot_ns = bpf_ktime_get_boot_ns();
	d->uid = (__u32)bpf_get_current_uid_gid();
	d->prog_type = attr->prog_type;
	d->insn_cnt = attr->insn_cnt;
	d->keyring_serial = serial;
	d->verdict = verdict;
	d->keyring_type = ktype;
	d->kernel = kernel;
	d->allowed = ret == 0;
	d->ret = ret;
	d->pad = 0;
	bpf_get_current_comm(d->comm, sizeof(d->comm));
	bpf_probe_read_kernel(d->name, sizeof(d->name), attr->prog_name);
	bpf_ringbuf_submit(d, 0);
	return ret;
}

char LICENSE[] SEC("license") = "GPL";
