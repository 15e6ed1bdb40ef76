use std::time::{Duration, Instant};

use super::testing::on_nodes;
use super::*;
use crate::dataset::Column;

fn exercise(c: &dyn Cluster) -> Vec<f64> {
    let r = c.rank() as f64;
    // Terms whose float sum depends on the order they are added in.
    let mut v = vec![0.1 * (r + 1.0), 1e16 * (1.0 - r), r];
    c.allreduce_sum_f64(&mut v).unwrap();
    let mut m = [r * 2.0];
    c.allreduce_max_f64(&mut m).unwrap();
    let mut counts = [c.rank() as u64, 1];
    c.allreduce_sum_u64(&mut counts).unwrap();
    let b = c.broadcast_bytes(&[c.rank() as u8 + 7]).unwrap();
    let all = c.allgather_bytes(&[c.rank() as u8; 2]).unwrap();
    c.barrier().unwrap();
    assert_eq!(b, [7]);
    assert_eq!(all, [vec![0u8, 0], vec![1, 1], vec![2, 2]]);
    assert_eq!(counts, [3, 3]);
    assert_eq!(m, [4.0]);
    v
}

#[test]
fn local_collectives_add_in_node_order() {
    let results = on_nodes(LocalCluster::group(3), |c| exercise(c));
    let want = vec![
        ((0.1 + 0.2) + 0.30000000000000004),
        (1e16 + 0.0) - 1e16,
        3.0,
    ];
    for r in &results {
        assert_eq!(r, &want);
    }
}

#[test]
fn tcp_collectives_on_loopback() {
    let names: Vec<String> = (1..=3).map(|i| format!("algo-{i}")).collect();
    let main_cfg = TcpConfig::new(0, names.clone(), "job-a", "127.0.0.1", 0);
    let listener = MainListener::bind(&main_cfg).unwrap();
    let port = listener.port();
    let results = std::thread::scope(|s| {
        let main = s.spawn(|| exercise(&listener.accept(&|_| {}).unwrap()));
        let workers: Vec<_> = (1..3)
            .map(|rank| {
                let cfg = TcpConfig::new(rank, names.clone(), "job-a", "127.0.0.1", port);
                s.spawn(move || exercise(&TcpCluster::connect(&cfg, &|_| {}).unwrap()))
            })
            .collect();
        let mut out = vec![main.join().unwrap()];
        out.extend(workers.into_iter().map(|w| w.join().unwrap()));
        out
    });
    assert!(results.iter().all(|r| r == &results[0]), "{results:?}");
    assert_eq!(results[0][2], 3.0);
}

#[test]
fn tcp_refuses_a_node_of_another_job_and_times_out_naming_the_missing() {
    let names: Vec<String> = (1..=2).map(|i| format!("algo-{i}")).collect();
    let mut main_cfg = TcpConfig::new(0, names.clone(), "job-a", "127.0.0.1", 0);
    main_cfg.connect_timeout = Duration::from_secs(2);
    let listener = MainListener::bind(&main_cfg).unwrap();
    let port = listener.port();
    std::thread::scope(|s| {
        let main = s.spawn(|| listener.accept(&|_| {}).err().unwrap().to_string());
        let mut cfg = TcpConfig::new(1, names.clone(), "job-b", "127.0.0.1", port);
        cfg.connect_timeout = Duration::from_secs(5);
        let e = TcpCluster::connect(&cfg, &|_| {})
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("refused") && e.contains("job-a"), "{e}");
        let e = main.join().unwrap();
        assert!(e.contains("not connected: algo-2 (index 1)"), "{e}");
    });
}

#[test]
fn a_worker_that_cannot_reach_the_main_node_gives_up_at_the_deadline() {
    let names: Vec<String> = (1..=2).map(|i| format!("algo-{i}")).collect();
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = TcpConfig::new(1, names, "job", "127.0.0.1", port);
    cfg.connect_timeout = Duration::from_millis(800);
    let t = Instant::now();
    let e = TcpCluster::connect(&cfg, &|_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        e.contains("could not join the main node algo-1 (index 0)"),
        "{e}"
    );
}

/// Node 2 leaves after round 4; the others must fail promptly, naming it.
fn dying_node(nodes: Vec<impl Cluster + Send>) {
    let t = Instant::now();
    let results = on_nodes(nodes, |c| -> Result<(), String> {
        for round in 0..1000 {
            if c.rank() == 2 && round == 2 {
                return Err("died".into());
            }
            let mut v = [1.0];
            c.allreduce_sum_f64(&mut v).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    for r in &results[..2] {
        let e = r.as_ref().unwrap_err();
        assert!(
            e.contains("node algo-3 (index 2) closed its connection during round 5"),
            "{e}"
        );
    }
}

#[test]
fn a_dead_local_node_fails_the_others_naming_it() {
    dying_node(LocalCluster::group(3));
}

#[test]
fn a_dead_tcp_node_fails_the_others_naming_it() {
    let names: Vec<String> = (1..=3).map(|i| format!("algo-{i}")).collect();
    let listener = MainListener::bind(&TcpConfig::new(0, names.clone(), "j", "", 0)).unwrap();
    let port = listener.port();
    let nodes = std::thread::scope(|s| {
        let main = s.spawn(|| listener.accept(&|_| {}).unwrap());
        let w: Vec<_> = (1..3)
            .map(|rank| {
                let cfg = TcpConfig::new(rank, names.clone(), "j", "127.0.0.1", port);
                s.spawn(move || TcpCluster::connect(&cfg, &|_| {}).unwrap())
            })
            .collect();
        let mut out = vec![main.join().unwrap()];
        out.extend(w.into_iter().map(|h| h.join().unwrap()));
        out
    });
    dying_node(nodes);
}

#[test]
fn a_silent_node_times_out_and_an_abort_carries_the_reason() {
    let nodes = LocalCluster::group_with_timeout(2, Duration::from_millis(300));
    let results = on_nodes(nodes, |c| {
        if c.rank() == 1 {
            std::thread::sleep(Duration::from_millis(800));
            return String::new();
        }
        c.barrier().unwrap_err().to_string()
    });
    assert!(
        results[0].contains("no word from node algo-2 (index 1)"),
        "{}",
        results[0]
    );
    let results = on_nodes(LocalCluster::group(3), |c| {
        if c.rank() == 1 {
            c.abort("bad data in row 3");
            return String::new();
        }
        c.barrier().unwrap_err().to_string()
    });
    for r in [&results[0], &results[2]] {
        assert!(
            r.contains("node algo-2 (index 1) failed: bad data in row 3"),
            "{r}"
        );
    }
}

#[test]
fn shards_and_text_columns_line_up_with_one_node() {
    assert_eq!(row_range(10, 0, 3), 0..3);
    assert_eq!(row_range(10, 1, 3), 3..6);
    assert_eq!(row_range(10, 2, 3), 6..10);
    let shards = [vec!["b", "a", "b"], vec!["c", "a"], vec!["d", "c", "", "b"]];
    let results = on_nodes(LocalCluster::group(3), |c| {
        let words = &shards[c.rank()];
        let mut levels: Vec<String> = Vec::new();
        let codes: Vec<f32> = words
            .iter()
            .map(|w| {
                if w.is_empty() {
                    return f32::NAN;
                }
                match levels.iter().position(|l| l == w) {
                    Some(i) => i as f32,
                    None => {
                        levels.push(w.to_string());
                        (levels.len() - 1) as f32
                    }
                }
            })
            .collect();
        let n = codes.len();
        let mut ds = Dataset::new(
            vec![
                Column::categorical("w", levels, codes),
                Column::numeric("x", vec![1.0; n]),
            ],
            None,
        );
        align_dataset(c, &mut ds).unwrap();
        let (offset, total) = shard_offset(c, n).unwrap();
        (ds, offset, total)
    });
    let want = ["b", "a", "c", "d"];
    for (r, (ds, offset, total)) in results.iter().enumerate() {
        let col = ds.column("w").unwrap();
        assert_eq!(col.levels().unwrap(), want);
        let back: Vec<&str> = col
            .values
            .iter()
            .map(|&v| if v.is_nan() { "" } else { want[v as usize] })
            .collect();
        assert_eq!(back, shards[r]);
        assert_eq!(*offset, [0, 3, 5][r]);
        assert_eq!(*total, 9);
    }
    let e = on_nodes(LocalCluster::group(2), |c| {
        let col = if c.rank() == 0 {
            Column::categorical("w", vec!["a".into()], vec![0.0])
        } else {
            Column::numeric("w", vec![1.0])
        };
        align_dataset(c, &mut Dataset::new(vec![col], None))
            .unwrap_err()
            .to_string()
    });
    assert!(
        e[0].contains("holds text on node algo-1 (index 0)"),
        "{}",
        e[0]
    );
}
