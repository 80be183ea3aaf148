//! `archzoo bench scaling`: one CSV row per architecture and length, with the peak heap measured
//! by the binary's counting allocator; lengths predicted above `--max-mem` are skipped, never run;
//! bad config files are rejected with their file and line.

mod common;

use common::{archzoo, stderr, stdout};
use experiments::scaling;

#[test]
fn scaling_rows_measure_every_length_and_skip_what_would_not_fit() {
    let tmp = common::tempdir();
    let csv = tmp.path().join("out/scaling.csv");
    let output = archzoo(
        &[
            "bench",
            "scaling",
            "--arch",
            "dlinear,mamba,transformer",
            "--seq-lens",
            "8,16",
            "--params",
            "3000",
            "--repeats",
            "1",
            "--min-seconds",
            "0",
            "--out",
            csv.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = scaling::read_csv(&csv).unwrap();
    assert_eq!(rows.len(), 6, "{}", stdout(&output));
    for row in &rows {
        assert!(row.skipped.is_empty(), "{row:?}");
        let tokens = (row.batch * row.seq_len) as f64;
        let train_ms = row.train_ms.unwrap();
        // The CSV keeps 4 decimals of the time.
        let expected = tokens / train_ms * 1e3;
        assert!(
            (row.train_tokens_per_s.unwrap() / expected - 1.0).abs() < 1e-3,
            "{row:?}"
        );
        assert!(row.train_peak_bytes.unwrap() > 0 && row.infer_peak_bytes.unwrap() > 0);
        assert!(row.decode_ms.unwrap() > 0.0);
        if row.arch != "dlinear" {
            // Matched size: the ladder's closest count to the target.
            assert!((1500..6000).contains(&row.params), "{row:?}");
        }
    }
    // The KV cache grows with the context; Mamba's state does not.
    let state = |arch: &str, len: usize| {
        rows.iter()
            .find(|r| r.arch == arch && r.seq_len == len)
            .unwrap()
            .decode_state_floats
            .unwrap()
    };
    assert_eq!(state("transformer", 16), 2 * state("transformer", 8));
    assert_eq!(state("mamba", 16), state("mamba", 8));
    let meta = common::read_json(&csv.with_extension("json"));
    assert_eq!(meta["configs"].as_array().unwrap().len(), 3);

    // With a 1 MiB cap the first length runs; the next is predicted from it and skipped, and so
    // is every longer one.
    let capped = tmp.path().join("capped.csv");
    let output = archzoo(
        &[
            "bench",
            "scaling",
            "--arch",
            "mamba",
            "--seq-lens",
            "64,128,100000",
            "--params",
            "3000",
            "--repeats",
            "1",
            "--min-seconds",
            "0",
            "--max-mem",
            "1",
            "--no-decode",
            "--out",
            capped.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = scaling::read_csv(&capped).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].skipped.is_empty() && rows[0].decode_ms.is_none());
    assert!(rows[0].train_peak_bytes.unwrap() > 1 << 18, "{:?}", rows[0]);
    assert!(
        rows[1].skipped.starts_with("predicted training peak"),
        "{:?}",
        rows[1]
    );
    assert!(rows[2].skipped.contains("shorter length"), "{:?}", rows[2]);
    assert!(rows[1..].iter().all(|r| r.train_ms.is_none()));
}

#[test]
fn bad_scaling_configs_name_the_file_and_line() {
    let tmp = common::tempdir();
    let cases = [
        (
            "arch = [\"mamba\"]\nseq_lens = [128]\nbatchsize = 2\n",
            "unknown field `batchsize`",
        ),
        (
            "arch = [\"mamba\"]\nseq_lens = [256, 128]\n",
            "strictly ascending",
        ),
        ("arch = [\"repeat\"]\nseq_lens = [128]\n", "no parameters"),
        (
            "arch = [\"mamba\"]\nseq_lens = [128]\nparams = \"big\"\n",
            "line 3",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let output = archzoo(
            &["bench", "scaling", "--config", path.to_str().unwrap()],
            None,
        );
        assert!(!output.status.success());
        let error = stderr(&output);
        assert!(
            error.contains(&format!("bad{i}.toml")) && error.contains(expected),
            "{error}"
        );
        assert!(!error.contains("panicked"), "{error}");
    }
}
