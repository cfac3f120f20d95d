/*
 * The C side of tunnelfwd: DPDK's headers plus the few accessors Swift cannot express.
 *
 * Swift imports DPDK's functions and plain structs directly. What it cannot import is
 * wrapped here, and nothing else: function-like macros (rte_pktmbuf_mtod, the lcore and
 * port iterators), fields of the 64-byte-aligned structs that arrive in Swift as
 * OpaquePointer (rte_mbuf), thread-local rte_errno, and RTE_BIT64 flags. Every wrapper is
 * static inline so a release build inlines it into the Swift caller.
 */
#ifndef TUNNELFWD_CDPDK_H
#define TUNNELFWD_CDPDK_H

/* Swift's Glibc module leaves epoll out; the control socket is served with it. */
#include <sys/epoll.h>

#include <rte_config.h>
#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

/* ---- mbuf fields (struct rte_mbuf is 64-byte aligned: Swift sees OpaquePointer) ---- */

static inline void *tf_mbuf_data(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
static inline uint16_t tf_mbuf_data_len(const struct rte_mbuf *m) { return m->data_len; }
static inline uint32_t tf_mbuf_pkt_len(const struct rte_mbuf *m) { return m->pkt_len; }

/* The mbuf header in front of each data room: what a pool element costs besides it. */
static const uint32_t tf_mbuf_header_size = sizeof(struct rte_mbuf);

/* Sets a single-segment frame's length (used after building a frame in a fresh mbuf). */
static inline void tf_mbuf_set_len(struct rte_mbuf *m, uint16_t len)
{
	m->data_len = len;
	m->pkt_len = len;
}

/* ---- rte_errno is thread-local: read it through a function ---- */

static inline int tf_errno(void) { return rte_errno; }

/* ---- iterators that DPDK only offers as macros ---- */

/* Next worker lcore after `prev` (start with -1); RTE_MAX_LCORE when none is left. */
static inline unsigned int tf_next_worker_lcore(int prev)
{
	return rte_get_next_lcore((unsigned int)prev, 1, 0);
}

/* ---- RTE_BIT64 flags ---- */

static const uint64_t tf_rss_ip_udp_tcp = RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_TCP;
static const uint64_t tf_tx_offload_multi_segs = RTE_ETH_TX_OFFLOAD_MULTI_SEGS;

#endif
