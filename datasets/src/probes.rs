//! Token probes: the synthetic tasks on which the sequence-model families differ, generated
//! seeded and deterministic, each as its reference generates it.
//!
//! - [`ProbeTask::Mqar`]: multi-query associative recall, as Zoology's `multiquery_ar`
//!   (Arora et al. 2023, <https://arxiv.org/abs/2312.04927>; HazyResearch/zoology
//!   `zoology/data/multiquery_ar.py` @ d88d6f5).
//! - [`ProbeTask::SelectiveCopy`]: selective copying, as the Mamba paper's (Gu & Dao 2023,
//!   <https://arxiv.org/abs/2312.00752>, Table 1; state-spaces/s4
//!   `src/dataloaders/datasets/copying.py`, `torch_copying_data(variable=True)`).
//! - [`ProbeTask::Induction`]: induction heads, as the Mamba paper's (Table 2; HazyResearch/safari
//!   `src/dataloaders/synthetics.py`, `generate_induction_head`).
//!
//! An example is `len` input tokens and a target per position (or none) for the loss; its
//! accuracy is scored at every targeted position, or at the last only ([`Scoring`]). Targets are
//! already shifted: the target at position `t` is what the model should output after reading
//! tokens `0..=t`.
//!
//! This crate draws with its own seeded generator (ChaCha8), not NumPy's or PyTorch's: the
//! distributions are the references', the exact examples are not.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A token task and its settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProbeTask {
    /// Multi-query associative recall: `K` key–value pairs, then the `K` keys again as queries
    /// among blanks (or random tokens); at each query the target is its value.
    Mqar {
        /// Vocabulary `V`: keys from `[1, V/2)`, values from `[V/2, V)`.
        vocab: usize,
        /// Sequence length `L` (even, `< V`).
        len: usize,
        /// Key–value pairs `K` (`4K ≤ L`).
        pairs: usize,
        /// Fill the positions after the context that hold no query with uniform random tokens
        /// (`random_non_queries`, the generator's default) instead of the blank 0 (what
        /// Zoology's figure-2 sweep sets).
        random_non_queries: bool,
    },
    /// Selective copying: `M` data tokens at random positions among `L + M` blanks, then `M`
    /// markers; at the markers the targets are the data tokens in order.
    SelectiveCopy {
        /// Alphabet `A`: blank 0, data tokens `[1, A − 2]`, marker `A − 1`.
        alphabet: usize,
        /// Blank positions `L` (the sequence is `L + 2M` tokens).
        len: usize,
        /// Data tokens `M` (`M < L`).
        tokens: usize,
    },
    /// Induction heads: random tokens with a trigger planted once, the token after it the
    /// answer; the sequence ends with the trigger and is scored there.
    Induction {
        /// Vocabulary: ordinary tokens `[0, V − 2)`, the trigger `V − 2` (`V − 1`, the
        /// reference's separator, never appears).
        vocab: usize,
        /// Sequence length, the final trigger included.
        len: usize,
    },
}

/// A setting out of range, named.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{task}: {parameter} = {value}: {requirement}")]
pub struct ProbeError {
    /// The task (`mqar`).
    pub task: &'static str,
    /// The parameter (`pairs`).
    pub parameter: &'static str,
    /// Its value.
    pub value: usize,
    /// What it must satisfy.
    pub requirement: String,
}

/// Generated examples, row-major `[n, len]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenExamples {
    /// Tokens per example.
    pub len: usize,
    /// Input tokens, `n · len`.
    pub tokens: Vec<u32>,
    /// The target after each position, `None` where the loss ignores it, `n · len`.
    pub targets: Vec<Option<u32>>,
    /// Which targets the accuracy reads.
    pub scoring: Scoring,
}

/// Which positions an example's accuracy is scored at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scoring {
    /// Every position with a target (MQAR's queries, selective copying's markers).
    Targets,
    /// The last position only (induction heads: the loss reads every next token).
    Last,
}

impl TokenExamples {
    /// Number of examples.
    pub fn count(&self) -> usize {
        self.tokens.len() / self.len
    }

    /// Example `i`'s tokens.
    pub fn tokens_of(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.len..(i + 1) * self.len]
    }

    /// Example `i`'s targets.
    pub fn targets_of(&self, i: usize) -> &[Option<u32>] {
        &self.targets[i * self.len..(i + 1) * self.len]
    }
}

/// Zoology's query-gap exponent: `p(g) ∝ g^(a − 1)` with `a = 0.01`.
const MQAR_POWER: f64 = 0.01;

impl ProbeTask {
    /// The task's name, `mqar`, `selective_copy` or `induction`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mqar { .. } => "mqar",
            Self::SelectiveCopy { .. } => "selective_copy",
            Self::Induction { .. } => "induction",
        }
    }

    /// Vocabulary size a model needs.
    pub fn vocab(&self) -> usize {
        match *self {
            Self::Mqar { vocab, .. } | Self::Induction { vocab, .. } => vocab,
            Self::SelectiveCopy { alphabet, .. } => alphabet,
        }
    }

    /// Tokens per example.
    pub fn seq_len(&self) -> usize {
        match *self {
            Self::Mqar { len, .. } | Self::Induction { len, .. } => len,
            Self::SelectiveCopy { len, tokens, .. } => len + 2 * tokens,
        }
    }

    /// Positions scored per example.
    pub fn scored_per_example(&self) -> usize {
        match *self {
            Self::Mqar { pairs, .. } => pairs,
            Self::SelectiveCopy { tokens, .. } => tokens,
            Self::Induction { .. } => 1,
        }
    }

    /// The same task at another length (induction heads' length extrapolation).
    pub fn with_len(self, len: usize) -> Self {
        match self {
            Self::Mqar {
                vocab,
                pairs,
                random_non_queries,
                ..
            } => Self::Mqar {
                vocab,
                len,
                pairs,
                random_non_queries,
            },
            Self::SelectiveCopy {
                alphabet, tokens, ..
            } => Self::SelectiveCopy {
                alphabet,
                len,
                tokens,
            },
            Self::Induction { vocab, .. } => Self::Induction { vocab, len },
        }
    }

    /// Check the settings (the references' asserts, and what a generator needs to terminate).
    pub fn validate(&self) -> Result<(), ProbeError> {
        let task = self.name();
        let fail = |parameter, value, requirement: String| {
            Err(ProbeError {
                task,
                parameter,
                value,
                requirement,
            })
        };
        match *self {
            Self::Mqar {
                vocab, len, pairs, ..
            } => {
                if len == 0 || len % 2 != 0 {
                    return fail("len", len, "must be even and positive".into());
                }
                if vocab <= len {
                    return fail("vocab", vocab, format!("must exceed len ({len})"));
                }
                if pairs == 0 || 4 * pairs > len {
                    return fail(
                        "pairs",
                        pairs,
                        format!("must be at least 1 with 4 · pairs ≤ len ({len})"),
                    );
                }
            }
            Self::SelectiveCopy {
                alphabet,
                len,
                tokens,
            } => {
                if alphabet < 3 {
                    return fail(
                        "alphabet",
                        alphabet,
                        "must be at least 3 (blank, a data token, the marker)".into(),
                    );
                }
                if tokens == 0 || tokens >= len {
                    return fail(
                        "tokens",
                        tokens,
                        format!("must be at least 1 and less than len ({len})"),
                    );
                }
            }
            Self::Induction { vocab, len } => {
                if vocab < 3 {
                    return fail(
                        "vocab",
                        vocab,
                        "must be at least 3 (an ordinary token, the trigger, the separator)".into(),
                    );
                }
                if len < 4 {
                    return fail(
                        "len",
                        len,
                        "must be at least 4 (trigger, answer, a token, the final trigger)".into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// `n` examples from `seed`: the same task, count and seed give the same examples.
    pub fn generate(&self, n: usize, seed: u64) -> Result<TokenExamples, ProbeError> {
        self.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let len = self.seq_len();
        let mut examples = TokenExamples {
            len,
            tokens: Vec::with_capacity(n * len),
            targets: Vec::with_capacity(n * len),
            scoring: match self {
                Self::Induction { .. } => Scoring::Last,
                _ => Scoring::Targets,
            },
        };
        match *self {
            Self::Mqar {
                vocab,
                len,
                pairs,
                random_non_queries,
            } => {
                let weights = mqar_gap_weights((len - 2 * pairs) / 2);
                let filler = random_non_queries.then_some(vocab);
                for _ in 0..n {
                    mqar(vocab, len, pairs, filler, &weights, &mut rng, &mut examples);
                }
            }
            Self::SelectiveCopy {
                alphabet,
                len,
                tokens,
            } => {
                for _ in 0..n {
                    selective_copy(alphabet, len, tokens, &mut rng, &mut examples);
                }
            }
            Self::Induction { vocab, len } => {
                for _ in 0..n {
                    induction(vocab, len, &mut rng, &mut examples);
                }
            }
        }
        Ok(examples)
    }
}

/// Weights of the query gaps `g = 0..space`: `a · (g + 1)^(a − 1)`, as Zoology's `p` (before
/// normalising; the draw normalises).
fn mqar_gap_weights(space: usize) -> Vec<f64> {
    (1..=space)
        .map(|g| MQAR_POWER * (g as f64).powf(MQAR_POWER - 1.0))
        .collect()
}

/// One MQAR example (`multiquery_ar`): the context `k₁ v₁ … k_K v_K` (keys drawn without
/// replacement from `[1, V/2)`, values from `[V/2, V)`), then over the `(L − 2K)/2` query slots
/// each key `i` at offset `2·gᵢ` after the context, the gaps drawn without replacement with
/// `p(g) ∝ (g + 1)^(−0.99)`; every other position a uniform random token from `[0, V)` when
/// `random_below` is `Some(V)` (`random_non_queries`), the blank 0 otherwise. The target at key
/// `i`'s query position is `vᵢ`; no other position has one.
fn mqar(
    vocab: usize,
    len: usize,
    pairs: usize,
    random_below: Option<usize>,
    gap_weights: &[f64],
    rng: &mut ChaCha8Rng,
    out: &mut TokenExamples,
) {
    let half = vocab / 2;
    let keys = sample_without_replacement(rng, 1..half, pairs);
    let values = sample_without_replacement(rng, half..vocab, pairs);
    let gaps = weighted_without_replacement(rng, gap_weights, pairs);
    let context = 2 * pairs;
    let mut tokens: Vec<Option<u32>> = vec![None; len];
    let mut targets = vec![None; len];
    for i in 0..pairs {
        tokens[2 * i] = Some(keys[i]);
        tokens[2 * i + 1] = Some(values[i]);
        let query = context + 2 * gaps[i];
        tokens[query] = Some(keys[i]);
        targets[query] = Some(values[i]);
    }
    out.tokens
        .extend(tokens.into_iter().map(|t| match (t, random_below) {
            (Some(token), _) => token,
            (None, Some(v)) => rng.random_range(0..v as u32),
            (None, None) => 0,
        }));
    out.targets.extend(targets);
}

/// One selective-copying example (`torch_copying_data(L, M, A, variable=True)`): `M` data tokens
/// uniform from `[1, A − 2]` at `M` distinct positions drawn uniformly among the first `L + M`
/// (kept in order), blanks (0) elsewhere, then `M` markers (`A − 1`). The target at the `j`-th
/// marker is the `j`-th data token.
fn selective_copy(
    alphabet: usize,
    len: usize,
    tokens: usize,
    rng: &mut ChaCha8Rng,
    out: &mut TokenExamples,
) {
    let data: Vec<u32> = (0..tokens)
        .map(|_| rng.random_range(1..alphabet as u32 - 1))
        .collect();
    let mut positions = sample_without_replacement(rng, 0..(len + tokens), tokens);
    positions.sort_unstable();
    let mut row = vec![0u32; len + tokens];
    for (&p, &t) in positions.iter().zip(&data) {
        row[p as usize] = t;
    }
    row.extend(std::iter::repeat_n(alphabet as u32 - 1, tokens));
    out.tokens.extend(row);
    out.targets.extend(std::iter::repeat_n(None, len + tokens));
    out.targets.extend(data.into_iter().map(Some));
}

/// One induction-heads example (`generate_induction_head`, one trigger, `induction_len` 1):
/// `len − 1` ordinary tokens uniform from `[0, V − 2)`, the trigger (`V − 2`) written at a
/// position drawn uniformly from `[0, len − 3)` (so the token after it is an ordinary one), then
/// the trigger again at the end. Targets are the next token at every position (training reads
/// them all, as the reference), the answer (the token after the first trigger) at the last;
/// only the last is scored.
///
/// The reference's example is `len` random tokens, the trigger and the answer, the model reading
/// all but the answer (`len + 1` tokens); here `len` counts the tokens the model reads, the
/// final trigger included.
fn induction(vocab: usize, len: usize, rng: &mut ChaCha8Rng, out: &mut TokenExamples) {
    let trigger = vocab as u32 - 2;
    let mut row: Vec<u32> = (0..len - 1).map(|_| rng.random_range(0..trigger)).collect();
    let at = rng.random_range(0..len - 3);
    row[at] = trigger;
    let answer = row[at + 1];
    row.push(trigger);
    out.targets.extend(row[1..].iter().copied().map(Some));
    out.targets.push(Some(answer));
    out.tokens.extend(row);
}

/// `k` distinct values drawn uniformly from `range`, in draw order.
fn sample_without_replacement(
    rng: &mut ChaCha8Rng,
    range: std::ops::Range<usize>,
    k: usize,
) -> Vec<u32> {
    let mut pool: Vec<u32> = range.map(|v| v as u32).collect();
    let (chosen, _) = pool.partial_shuffle(rng, k);
    chosen.to_vec()
}

/// `k` distinct indices drawn with probability proportional to `weights`, one at a time from
/// those left (the distribution of NumPy's `choice(replace=False, p=…)`, which keeps the first
/// occurrences of independent draws).
fn weighted_without_replacement(rng: &mut ChaCha8Rng, weights: &[f64], k: usize) -> Vec<usize> {
    let mut left = weights.to_vec();
    let mut chosen = Vec::with_capacity(k);
    for _ in 0..k {
        let total: f64 = left.iter().sum();
        let mut x = rng.random::<f64>() * total;
        let mut pick = left.iter().rposition(|&w| w > 0.0).expect("k ≤ slots");
        for (i, &w) in left.iter().enumerate() {
            if w > 0.0 && x < w {
                pick = i;
                break;
            }
            x -= w;
        }
        left[pick] = 0.0;
        chosen.push(pick);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    const MQAR: ProbeTask = ProbeTask::Mqar {
        vocab: 128,
        len: 64,
        pairs: 8,
        random_non_queries: true,
    };
    const COPY: ProbeTask = ProbeTask::SelectiveCopy {
        alphabet: 16,
        len: 40,
        tokens: 6,
    };
    const INDUCTION: ProbeTask = ProbeTask::Induction { vocab: 16, len: 32 };

    #[test]
    fn every_mqar_query_is_answered_earlier_by_its_key_value_pair() {
        let examples = MQAR.generate(200, 1).unwrap();
        let (half, context) = (64, 16);
        for i in 0..examples.count() {
            let (tokens, targets) = (examples.tokens_of(i), examples.targets_of(i));
            let labelled: Vec<usize> = (0..64).filter(|&t| targets[t].is_some()).collect();
            assert_eq!(labelled.len(), 8);
            let keys: Vec<u32> = (0..8).map(|j| tokens[2 * j]).collect();
            for j in 0..8 {
                assert!((1..half).contains(&keys[j]), "key {}", keys[j]);
                assert!((half..128).contains(&tokens[2 * j + 1]));
            }
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 8, "keys are distinct");
            for &t in &labelled {
                assert!(t >= context && (t - context) % 2 == 0, "query at {t}");
                let key = tokens[t];
                let j = keys
                    .iter()
                    .position(|&k| k == key)
                    .expect("a query is a key");
                assert_eq!(targets[t], Some(tokens[2 * j + 1]));
            }
        }
    }

    #[test]
    fn without_random_non_queries_only_queries_follow_the_context() {
        let ProbeTask::Mqar {
            vocab, len, pairs, ..
        } = MQAR
        else {
            unreachable!()
        };
        let blanks = ProbeTask::Mqar {
            vocab,
            len,
            pairs,
            random_non_queries: false,
        };
        let examples = blanks.generate(100, 4).unwrap();
        for i in 0..examples.count() {
            let (tokens, targets) = (examples.tokens_of(i), examples.targets_of(i));
            for t in 2 * pairs..len {
                match targets[t] {
                    Some(_) => assert!(tokens[t] > 0, "a query is a key"),
                    None => assert_eq!(tokens[t], 0, "position {t} of example {i}"),
                }
            }
        }
    }

    #[test]
    fn near_mqar_queries_are_likelier_than_far_ones() {
        // p(g) ∝ (g + 1)^(−0.99): the first slot after the context is drawn far more often
        // than the last.
        let examples = ProbeTask::Mqar {
            vocab: 128,
            len: 64,
            pairs: 1,
            random_non_queries: true,
        }
        .generate(4000, 2)
        .unwrap();
        let count_at = |t: usize| {
            (0..examples.count())
                .filter(|&i| examples.targets_of(i)[t].is_some())
                .count()
        };
        let (first, last) = (count_at(2), count_at(62));
        // Expected ratio 31^0.99 ≈ 30.
        assert!(first > 10 * last.max(1), "{first} vs {last}");
    }

    #[test]
    fn copy_targets_are_the_planted_tokens_in_order() {
        let examples = COPY.generate(200, 3).unwrap();
        assert_eq!(examples.len, 52);
        assert_eq!(examples.scoring, Scoring::Targets);
        for i in 0..examples.count() {
            let (tokens, targets) = (examples.tokens_of(i), examples.targets_of(i));
            let planted: Vec<u32> = tokens[..46].iter().copied().filter(|&t| t != 0).collect();
            assert_eq!(planted.len(), 6);
            assert!(planted.iter().all(|&t| (1..=14).contains(&t)));
            assert!(tokens[46..].iter().all(|&t| t == 15), "markers");
            let wanted: Vec<Option<u32>> = planted.into_iter().map(Some).collect();
            assert_eq!(&targets[46..], &wanted[..]);
            assert!(targets[..46].iter().all(Option::is_none));
        }
    }

    #[test]
    fn the_induction_answer_follows_the_first_trigger() {
        let examples = INDUCTION.generate(200, 4).unwrap();
        assert_eq!(examples.scoring, Scoring::Last);
        for i in 0..examples.count() {
            let (tokens, targets) = (examples.tokens_of(i), examples.targets_of(i));
            assert_eq!(tokens[31], 14, "ends with the trigger");
            let triggers: Vec<usize> = (0..32).filter(|&t| tokens[t] == 14).collect();
            assert_eq!(triggers.len(), 2, "planted once, then at the end");
            let first = triggers[0];
            assert!(tokens[first + 1] < 14);
            assert_eq!(targets[31], Some(tokens[first + 1]));
            for t in 0..31 {
                assert_eq!(targets[t], Some(tokens[t + 1]), "next token at {t}");
            }
            assert!(
                tokens.iter().all(|&t| t != 15),
                "the separator never appears"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_examples() {
        for task in [MQAR, COPY, INDUCTION] {
            assert_eq!(task.generate(20, 9), task.generate(20, 9));
            assert_ne!(task.generate(20, 9), task.generate(20, 10));
        }
    }

    #[test]
    fn bad_settings_name_the_parameter() {
        let cases = [
            (
                ProbeTask::Mqar {
                    vocab: 128,
                    len: 63,
                    pairs: 4,
                    random_non_queries: true,
                },
                "len",
            ),
            (
                ProbeTask::Mqar {
                    vocab: 64,
                    len: 64,
                    pairs: 4,
                    random_non_queries: true,
                },
                "vocab",
            ),
            (
                ProbeTask::Mqar {
                    vocab: 128,
                    len: 64,
                    pairs: 17,
                    random_non_queries: true,
                },
                "pairs",
            ),
            (
                ProbeTask::SelectiveCopy {
                    alphabet: 16,
                    len: 16,
                    tokens: 16,
                },
                "tokens",
            ),
            (ProbeTask::Induction { vocab: 2, len: 16 }, "vocab"),
        ];
        for (task, parameter) in cases {
            let error = task.generate(1, 0).unwrap_err();
            assert_eq!(error.parameter, parameter, "{error}");
        }
    }
}
