//! Hand-written CPU kernels wrapped as candle custom ops (forward and backward), used where candle's
//! stock kernels are slow (conv backward) or wrong (max-pool backward scale, ReLU gradient at 0).
//! On other devices the forward falls back to candle's own ops.

pub mod conv;
pub mod gemm;
pub mod pointwise;
pub mod pool;

use std::cell::{Cell, RefCell};

use candle_core::{CpuStorage, Layout};

/// The contiguous f32 slice behind a CPU storage, or an error naming the op.
pub(crate) fn f32_slice<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{op}: only f32 tensors are supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: operand must be contiguous"),
    }
}

/// Splits `0..n` into at most `parts` contiguous, nearly equal ranges (a fixed split, so sums are
/// reduced in the same order whatever the thread count: bit-identical results).
pub(crate) fn fixed_chunks(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

thread_local! {
    /// Per-thread scratch memory reused across kernel calls (rayon's workers live for the process).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with two scratch buffers of `a` and `b` floats from this thread's reusable pool, so
/// hot kernels neither zero nor fault in fresh pages on every call. Their contents are left over
/// from earlier calls: `f` must write every element it reads.
pub(crate) fn with_scratch<R>(
    a: usize,
    b: usize,
    f: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < a + b {
                v.resize(a + b, 0.0);
            }
            let (x, y) = v.split_at_mut(a);
            f(x, &mut y[..b])
        }
        // Re-entered on this thread (not expected): fall back to fresh buffers.
        Err(_) => f(&mut vec![0.0; a], &mut vec![0.0; b]),
    })
}

thread_local! {
    /// Set while this thread runs one row block of a batch cut across threads.
    static IN_ROW_BLOCK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` as one row block of a batch that is already cut across threads: kernels called
/// inside keep their loops on this thread instead of splitting them again.
pub fn as_row_block<R>(f: impl FnOnce() -> R) -> R {
    let was = IN_ROW_BLOCK.with(|c| c.replace(true));
    let r = f();
    IN_ROW_BLOCK.with(|c| c.set(was));
    r
}

/// Whether this thread is running a row block (see [`as_row_block`]).
pub(crate) fn in_row_block() -> bool {
    IN_ROW_BLOCK.with(Cell::get)
}

/// The minimum items per rayon job of a kernel loop: all of them inside a row block (the loop
/// then runs serially, with no job overhead), else 1.
pub(crate) fn min_job_len() -> usize {
    if in_row_block() {
        usize::MAX
    } else {
        1
    }
}

/// The largest absolute difference between two equally long slices (for tests comparing two
/// computations of the same values).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max)
}
