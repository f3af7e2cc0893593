// SPDX-License-Identifier: GPL-2.0
// bpfseal's bundled example: an XDP program that counts packets and bytes per IP protocol.
// Build: clang-19 -O2 -g -target bpfel -I/usr/include/x86_64-linux-gnu -fdebug-prefix-map=$PWD=. -c xdp_counter.bpf.c -o xdp_counter.o
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct counter);
} proto_stats SEC(".maps");

/* Set by whoever builds the release; frozen at load, so the verifier treats it as a constant. */
const volatile __u32 sample_every = 1;

__u64 total_seen = 0;

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 proto = 0;

	__sync_fetch_and_add(&total_seen, 1);
	if (sample_every > 1 && total_seen % sample_every)
		return XDP_PASS;
	if ((void *)(eth + 1) <= end && eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) <= end)
			proto = ip->protocol;
	}
	struct counter *c = bpf_map_lookup_elem(&proto_stats, &proto);
	if (c) {
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, end - data);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
