//! A safe, single-threaded f32 matrix product over strided operands (the `gemm` crate underneath),
//! and the dense layer built on it.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape};
use rayon::prelude::*;

use super::{f32_slice, in_row_block};

/// A strided read-only matrix view: element (i, j) is at `data[i*rs + j*cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    /// Backing storage.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major contiguous matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (a view, no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `c` (row-major m×n) = `a`·`b`, or `c += a·b` when `accumulate`.
pub fn matmul(a: MatRef, b: MatRef, c: &mut [f32], accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && c.len() >= m * n && a.fits() && b.fits(),
        "matmul: bad operand sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above bound every index gemm touches: lhs (m×k, strides a.rs/a.cs),
    // rhs (k×n, strides b.rs/b.cs) lie inside their slices and dst (m×n row-major) inside `c`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Rows per task of the dense forward: a fixed block, so each row's result never depends on the
/// thread count.
const LINEAR_ROWS: usize = 32;

/// `y = x·wᵀ + bias` (or `x·w + bias` when `w` is stored K×N) in one pass: the output starts as
/// the bias rows and the matrix product accumulates into it (candle's path allocates and sweeps
/// the output twice).
fn linear_forward(
    x: (&CpuStorage, &Layout),
    w: (&CpuStorage, &Layout),
    bias: Option<(&CpuStorage, &Layout)>,
    trans_b: bool,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let xs = f32_slice(x.0, x.1, "gemm")?;
    let ws = f32_slice(w.0, w.1, "gemm")?;
    let (xd, wd) = (x.1.dims(), w.1.dims());
    let (wk, n) = match (wd, trans_b) {
        ([n, k], true) => (*k, *n),
        ([k, n], false) => (*k, *n),
        _ => candle_core::bail!("gemm: weight of shape {wd:?} is not a matrix"),
    };
    let [b, k] = *xd else {
        candle_core::bail!("gemm: input of shape {xd:?} is not a matrix")
    };
    if k != wk {
        candle_core::bail!("gemm: input {xd:?} does not fit weight {wd:?}");
    }
    let bias = match bias {
        Some((s, l)) => {
            let v = f32_slice(s, l, "gemm bias")?;
            if v.len() != n {
                candle_core::bail!("gemm: bias of {} values for {n} outputs", v.len());
            }
            Some(v)
        }
        None => None,
    };
    let wm = if trans_b {
        MatRef::row_major(ws, n, k).t()
    } else {
        MatRef::row_major(ws, k, n)
    };
    let mut out = vec![0f32; b * n];
    // Inside a row block one call takes all rows (the weight is packed once).
    let rows = if in_row_block() { b } else { LINEAR_ROWS };
    out.par_chunks_mut((rows * n).max(1))
        .enumerate()
        .for_each(|(blk, ob)| {
            if let Some(bias) = bias {
                ob.chunks_mut(n).for_each(|r| r.copy_from_slice(bias));
            }
            let xr = &xs[blk * rows * k..][..ob.len() / n.max(1) * k];
            matmul(
                MatRef::row_major(xr, xr.len() / k.max(1), k),
                wm,
                ob,
                bias.is_some(),
            );
        });
    Ok((CpuStorage::F32(out), Shape::from((b, n))))
}

/// The dense layer of ONNX Gemm with α = β = 1 (see `linear_forward`); untracked operands only.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    /// The weight is stored N×K (ONNX transB = 1).
    pub trans_b: bool,
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "ruse-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        linear_forward((s1, l1), (s2, l2), None, self.trans_b)
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "ruse-linear-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        linear_forward((s1, l1), (s2, l2), Some((s3, l3)), self.trans_b)
    }
}
