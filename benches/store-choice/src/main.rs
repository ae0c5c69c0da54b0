//! quick_cache vs moka for the shield's store: entries of 1–64 KiB (weighed in bytes) under a
//! Zipf(1) request stream over 100,000 keys, the store holding about a tenth of their bytes.
//! Reported: the hit ratio (eviction quality; a miss inserts, as the shield stores what it
//! fetched), and the cost of a hit (a `get` of a present key, single thread, ns).

use std::sync::Arc;
use std::time::Instant;

const KEYS: usize = 100_000;
const REQUESTS: usize = 2_000_000;

fn size_of(k: usize) -> u64 {
    1024 + (k as u64 * 2654435761 % (63 * 1024))
}

fn zipf() -> Vec<f64> {
    let w: Vec<f64> = (1..=KEYS).map(|k| 1.0 / k as f64).collect();
    let t: f64 = w.iter().sum();
    w.iter().scan(0.0, |a, x| { *a += x / t; Some(*a) }).collect()
}

fn stream(cdf: &[f64], n: usize, seed: u64) -> Vec<usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| cdf.partition_point(|c| *c < rng.f64()).min(KEYS - 1)).collect()
}

#[derive(Clone)]
struct W;
impl quick_cache::Weighter<u64, Arc<Vec<u8>>> for W {
    fn weight(&self, _: &u64, v: &Arc<Vec<u8>>) -> u64 {
        v.len() as u64
    }
}

fn main() {
    let cdf = zipf();
    let total: u64 = (0..KEYS).map(size_of).sum();
    let capacity = total / 10;
    let reqs = stream(&cdf, REQUESTS, 1);
    println!("{KEYS} keys, {} MiB in all, store {} MiB, {REQUESTS} requests, Zipf(1)", total >> 20, capacity >> 20);

    let q: quick_cache::sync::Cache<u64, Arc<Vec<u8>>, W> =
        quick_cache::sync::Cache::with_weighter(KEYS / 10, capacity, W);
    let m: moka::sync::Cache<u64, Arc<Vec<u8>>> = moka::sync::Cache::builder()
        .max_capacity(capacity)
        .weigher(|_, v: &Arc<Vec<u8>>| u32::try_from(v.len()).unwrap_or(u32::MAX))
        .build();
    let (mut qh, mut mh) = (0usize, 0usize);
    let t = Instant::now();
    for &k in &reqs {
        let k64 = k as u64;
        if q.get(&k64).is_some() { qh += 1 } else { q.insert(k64, Arc::new(vec![0; size_of(k) as usize])) }
    }
    let qt = t.elapsed();
    let t = Instant::now();
    for &k in &reqs {
        let k64 = k as u64;
        if m.get(&k64).is_some() { mh += 1 } else { m.insert(k64, Arc::new(vec![0; size_of(k) as usize])) }
    }
    m.run_pending_tasks();
    let mt = t.elapsed();
    println!("hit ratio: quick_cache {:.1} %, moka {:.1} %", 100.0 * qh as f64 / REQUESTS as f64, 100.0 * mh as f64 / REQUESTS as f64);
    println!("whole stream (gets + inserts): quick_cache {qt:?}, moka {mt:?}");

    // Hit cost: keys known present in both.
    let present: Vec<u64> = (0..KEYS as u64).filter(|k| q.peek(k).is_some() && m.contains_key(k)).take(2000).collect();
    let rounds = 500;
    let t = Instant::now();
    let mut found = 0;
    for _ in 0..rounds { for k in &present { found += usize::from(q.get(k).is_some()) } }
    let qn = t.elapsed().as_nanos() as f64 / (rounds * present.len()) as f64;
    let t = Instant::now();
    for _ in 0..rounds { for k in &present { found += usize::from(m.get(k).is_some()) } }
    let mn = t.elapsed().as_nanos() as f64 / (rounds * present.len()) as f64;
    println!("hit cost ({} present keys, {found} hits): quick_cache {qn:.0} ns, moka {mn:.0} ns", present.len());
}
