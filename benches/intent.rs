//! Intent detection benchmark: kefud's TF-IDF index against scikit-learn on the same data, in
//! the same run (`cargo bench --bench intent`).
//!
//! For each dataset in `$KEFUD_INTENT_DATA` (default `../shared/data/intents`, read in place):
//! the train split's texts become the knowledge base's example questions (one entry per
//! intent), every test text is routed to its nearest example, and top-1 accuracy and
//! per-query latency (median, p99) are reported for kefud and for scikit-learn's
//! `TfidfVectorizer` + cosine nearest neighbour (`bench/intent_sklearn.py`). Latency is also
//! measured with 1,000 and 10,000 example questions (each its own entry; the train texts
//! cycled where a dataset has fewer). With the out-of-scope set, it prints how a bot threshold
//! trades in-scope answers against out-of-scope refusals.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kefud::intent::IntentIndex;

const SIZES: [usize; 2] = [1_000, 10_000];

struct Row {
    text: String,
    intent: String,
    train: bool,
}

fn load(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON Lines");
            Row {
                text: v["text"].as_str().expect("text").to_string(),
                intent: v["intent"].as_str().expect("intent").to_string(),
                train: v["split"] == "train",
            }
        })
        .collect()
}

struct Outcome {
    accuracy: f64,
    median_us: f64,
    p99_us: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Routes every test row; `labels[label]` is the intent of an indexed example.
fn route(index: &IntentIndex, labels: &[String], test: &[&Row]) -> Outcome {
    let mut correct = 0;
    let mut latencies = Vec::with_capacity(test.len());
    for row in test {
        let started = Instant::now();
        let nearest = index.nearest(&row.text);
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        if nearest.is_some_and(|n| labels[n.label as usize] == row.intent) {
            correct += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    Outcome {
        accuracy: correct as f64 / test.len() as f64,
        median_us: percentile(&latencies, 0.5),
        p99_us: percentile(&latencies, 0.99),
    }
}

fn sklearn(data: &Path) -> Option<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/intent_sklearn.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(data);
    cmd.args(SIZES.iter().map(ToString::to_string));
    match cmd.output() {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).ok(),
        Ok(out) => {
            eprintln!(
                "scikit-learn baseline failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("cannot run python3: {e}");
            None
        }
    }
}

/// Prints the tables; `false` when kefud's accuracy is more than a point from scikit-learn's
/// with the same tokenizer (or the baseline could not run).
fn bench(name: &str, data: &Path) -> bool {
    let rows = load(data);
    let train: Vec<&Row> = rows.iter().filter(|r| r.train).collect();
    let test: Vec<&Row> = rows.iter().filter(|r| !r.train).collect();
    let mut intent_ids: HashMap<&str, u32> = HashMap::new();
    let mut labels: Vec<String> = Vec::new();
    let docs: Vec<(&str, u32)> = train
        .iter()
        .map(|r| {
            let id = *intent_ids.entry(&r.intent).or_insert_with(|| {
                labels.push(r.intent.clone());
                labels.len() as u32 - 1
            });
            (r.text.as_str(), id)
        })
        .collect();
    let built = Instant::now();
    let index = IntentIndex::build(docs.iter().copied());
    let build_ms = built.elapsed().as_secs_f64() * 1e3;
    let kefud = route(&index, &labels, &test);
    let baseline = sklearn(data);
    println!(
        "\n## {name}: {} intents, {} example questions, {} test questions (index built in {build_ms:.1} ms)\n",
        labels.len(),
        train.len(),
        test.len()
    );
    println!("| implementation | top-1 accuracy | median µs/query | p99 µs/query |");
    println!("| --- | ---: | ---: | ---: |");
    let line = |who: &str, acc: f64, med: f64, p99: f64| {
        println!("| {who} | {:.2}% | {med:.1} | {p99:.1} |", acc * 100.0);
    };
    line("kefud", kefud.accuracy, kefud.median_us, kefud.p99_us);
    let mut sk_median = None;
    let sk_accuracy = baseline
        .as_ref()
        .and_then(|b| b["kefud_analyzer"]["accuracy"].as_f64());
    if let Some(b) = &baseline {
        for (key, who) in [
            ("kefud_analyzer", "scikit-learn, same tokenizer"),
            ("default_analyzer", "scikit-learn, default analyzer"),
        ] {
            if let Some(r) = b.get(key) {
                let m = r["median_us"].as_f64().unwrap_or(f64::NAN);
                sk_median.get_or_insert(m);
                line(
                    who,
                    r["accuracy"].as_f64().unwrap_or(f64::NAN),
                    m,
                    r["p99_us"].as_f64().unwrap_or(f64::NAN),
                );
            }
        }
    }
    if let Some(m) = sk_median {
        println!(
            "\nkefud is {:.0}x faster per query (median, same tokenizer).",
            m / kefud.median_us
        );
    }
    println!("\n| example questions | kefud median µs | kefud p99 µs | scikit-learn median µs | scikit-learn p99 µs | speed-up (median) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for size in SIZES {
        let docs: Vec<(&str, u32)> = (0..size)
            .map(|i| (train[i % train.len()].text.as_str(), i as u32))
            .collect();
        let index = IntentIndex::build(docs.iter().copied());
        let labels: Vec<String> = (0..size).map(|i| i.to_string()).collect();
        let k = route(&index, &labels, &test);
        let sk = baseline
            .as_ref()
            .map(|b| &b["latency_at"][size.to_string()]);
        let (sm, sp) = sk.map_or((f64::NAN, f64::NAN), |s| {
            (
                s["median_us"].as_f64().unwrap_or(f64::NAN),
                s["p99_us"].as_f64().unwrap_or(f64::NAN),
            )
        });
        println!(
            "| {size} | {:.1} | {:.1} | {sm:.1} | {sp:.1} | {:.0}x |",
            k.median_us,
            k.p99_us,
            sm / k.median_us
        );
    }
    match sk_accuracy {
        Some(a) if (a - kefud.accuracy).abs() <= 0.01 => true,
        Some(a) => {
            println!(
                "\nFAIL: kefud's accuracy {:.2}% is more than a point from scikit-learn's {:.2}%",
                kefud.accuracy * 100.0,
                a * 100.0
            );
            false
        }
        None => {
            println!("\nFAIL: the scikit-learn baseline did not run");
            false
        }
    }
}

/// In-scope test questions answered correctly and out-of-scope ones refused, per threshold.
fn thresholds(in_scope: &Path, out_of_scope: &Path) {
    let rows = load(in_scope);
    let oos = load(out_of_scope);
    let mut intent_ids: HashMap<&str, u32> = HashMap::new();
    let mut labels: Vec<String> = Vec::new();
    let docs: Vec<(&str, u32)> = rows
        .iter()
        .filter(|r| r.train)
        .map(|r| {
            let id = *intent_ids.entry(&r.intent).or_insert_with(|| {
                labels.push(r.intent.clone());
                labels.len() as u32 - 1
            });
            (r.text.as_str(), id)
        })
        .collect();
    let index = IntentIndex::build(docs.iter().copied());
    let score = |r: &Row| {
        index
            .nearest(&r.text)
            .map_or((None, 0.0), |n| (Some(n.label), n.score))
    };
    let test: Vec<_> = rows
        .iter()
        .filter(|r| !r.train)
        .map(|r| (r, score(r)))
        .collect();
    let oos_test: Vec<f32> = oos
        .iter()
        .filter(|r| !r.train)
        .map(|r| score(r).1)
        .collect();
    println!("\n## Bot threshold on CLINC150 (in-scope test + out-of-scope test)\n");
    println!("| threshold | in-scope answered correctly | in-scope answered wrongly | out-of-scope refused |");
    println!("| ---: | ---: | ---: | ---: |");
    for t in [0.3f32, 0.4, 0.5, 0.6, 0.7] {
        let right = test
            .iter()
            .filter(|(r, (l, s))| *s >= t && l.is_some_and(|l| labels[l as usize] == r.intent))
            .count();
        let wrong = test.iter().filter(|(_, (_, s))| *s >= t).count() - right;
        let refused = oos_test.iter().filter(|s| **s < t).count();
        println!(
            "| {t:.1} | {:.1}% | {:.1}% | {:.1}% |",
            100.0 * right as f64 / test.len() as f64,
            100.0 * wrong as f64 / test.len() as f64,
            100.0 * refused as f64 / oos_test.len() as f64
        );
    }
}

fn main() {
    let dir = std::env::var_os("KEFUD_INTENT_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/intents"),
        PathBuf::from,
    );
    if !dir.join("clinc150.jsonl").exists() {
        eprintln!(
            "intent datasets not found in {} (set KEFUD_INTENT_DATA)",
            dir.display()
        );
        std::process::exit(1);
    }
    println!(
        "# Intent detection: kefud vs scikit-learn, same machine, same run ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let english = bench("CLINC150 (English)", &dir.join("clinc150.jsonl"));
    let chinese = bench("SMP2017-ECDT (Chinese)", &dir.join("smp2017.jsonl"));
    thresholds(&dir.join("clinc150.jsonl"), &dir.join("clinc150_oos.jsonl"));
    if !(english && chinese) {
        std::process::exit(1);
    }
}
