//! ONNX import (opsets 7–21): decodes the protobuf, folds shape arithmetic on constants, and maps
//! each node onto a ruse `Op` with a static per-sample shape. Anything ruse cannot represent
//! exactly is an error naming file, node and op — never a guess.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use prost::Message;

use crate::error::{GraphError, Result};
use crate::graph::{Graph, Operand, ParamId, ValueId};
use crate::onnx_proto::{data_type, AttributeProto, ModelProto, NodeProto, TensorProto};
use crate::op::{ConvAttrs, Op, PoolAttrs};

/// Lowest and highest default-domain opset accepted.
pub const OPSET_RANGE: (i64, i64) = (7, 21);

/// Metadata key holding the input domain ("lo,hi").
pub const META_INPUT_DOMAIN: &str = "ruse.input_domain";

/// Reads and imports an ONNX file.
pub fn load_onnx(path: impl AsRef<Path>) -> Result<Graph> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| GraphError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    import_onnx(&bytes, path)
}

/// Imports ONNX bytes; `path` is only used in error messages.
pub fn import_onnx(bytes: &[u8], path: &Path) -> Result<Graph> {
    let model = ModelProto::decode(bytes).map_err(|e| GraphError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Importer::new(path, &model)?.run(&model)
}

/// A constant known at import time.
#[derive(Debug, Clone)]
enum Const {
    F32 {
        dims: Vec<usize>,
        data: Vec<f32>,
        name: String,
    },
    I64 {
        dims: Vec<usize>,
        data: Vec<i64>,
    },
}

impl Const {
    fn dims(&self) -> &[usize] {
        match self {
            Const::F32 { dims, .. } | Const::I64 { dims, .. } => dims,
        }
    }
    fn ints(&self) -> Vec<i64> {
        match self {
            Const::F32 { data, .. } => data.iter().map(|&v| v as i64).collect(),
            Const::I64 { data, .. } => data.clone(),
        }
    }
    fn floats(&self) -> Vec<f32> {
        match self {
            Const::F32 { data, .. } => data.clone(),
            Const::I64 { data, .. } => data.iter().map(|&v| v as f32).collect(),
        }
    }
    fn with(
        &self,
        dims: Vec<usize>,
        idx: impl Fn(&[i64]) -> Vec<i64>,
        fidx: impl Fn(&[f32]) -> Vec<f32>,
    ) -> Const {
        match self {
            Const::F32 { data, name, .. } => Const::F32 {
                dims,
                data: fidx(data),
                name: name.clone(),
            },
            Const::I64 { data, .. } => Const::I64 {
                dims,
                data: idx(data),
            },
        }
    }
}

/// What a tensor name refers to during import.
#[derive(Debug, Clone)]
enum Slot {
    Value(ValueId),
    Const(Const),
}

struct Importer {
    path: PathBuf,
    opset: i64,
    graph: Graph,
    env: HashMap<String, Slot>,
    params_by_name: HashMap<String, ParamId>,
}

fn tensor_to_const(t: &TensorProto, path: &Path) -> Result<Const> {
    let bad = |reason: String| GraphError::Model {
        path: path.to_path_buf(),
        reason: format!("tensor '{}': {reason}", t.name),
    };
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(bad("stored as external data, which ruse does not read; re-export with the weights embedded".into()));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<Vec<_>>>()?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= (1 << 31))
        .ok_or_else(|| bad(format!("absurd shape {dims:?}")))?;
    let raw = &t.raw_data;
    let check_raw = |width: usize| -> Result<()> {
        if raw.len() != n * width {
            return Err(bad(format!(
                "raw data has {} bytes but its shape {dims:?} needs {} (truncated or corrupt)",
                raw.len(),
                n * width
            )));
        }
        Ok(())
    };
    let check = |got: usize| -> Result<()> {
        if got != n {
            return Err(bad(format!(
                "holds {got} elements but its shape {dims:?} needs {n} (truncated or corrupt)"
            )));
        }
        Ok(())
    };
    let f32s = |v: Vec<f32>| Const::F32 {
        dims: dims.clone(),
        data: v,
        name: t.name.clone(),
    };
    let i64s = |v: Vec<i64>| Const::I64 {
        dims: dims.clone(),
        data: v,
    };
    let c = match t.data_type {
        data_type::FLOAT => {
            if raw.is_empty() {
                check(t.float_data.len())?;
                f32s(t.float_data.clone())
            } else {
                check_raw(4)?;
                f32s(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
        }
        data_type::DOUBLE => {
            if raw.is_empty() {
                check(t.double_data.len())?;
                f32s(t.double_data.iter().map(|&v| v as f32).collect())
            } else {
                check_raw(8)?;
                f32s(raw
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
                    .collect())
            }
        }
        data_type::INT64 => {
            if raw.is_empty() {
                check(t.int64_data.len())?;
                i64s(t.int64_data.clone())
            } else {
                check_raw(8)?;
                i64s(raw
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect())
            }
        }
        data_type::INT32 => {
            if raw.is_empty() {
                check(t.int32_data.len())?;
                i64s(t.int32_data.iter().map(|&v| v as i64).collect())
            } else {
                check_raw(4)?;
                i64s(raw
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                    .collect())
            }
        }
        data_type::UINT8 | data_type::INT8 | data_type::BOOL => {
            let signed = t.data_type == data_type::INT8;
            if raw.is_empty() {
                check(t.int32_data.len())?;
                i64s(t.int32_data.iter().map(|&v| v as i64).collect())
            } else {
                check_raw(1)?;
                i64s(raw.iter().map(|&b| if signed { b as i8 as i64 } else { b as i64 }).collect())
            }
        }
        other => return Err(bad(format!("element type {other} is not supported (float, double, int64, int32, int8, uint8, bool are)"))),
    };
    Ok(c)
}

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

impl Importer {
    fn new(path: &Path, model: &ModelProto) -> Result<Self> {
        let model_err = |reason: String| GraphError::Model {
            path: path.to_path_buf(),
            reason,
        };
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .ok_or_else(|| {
                model_err("no default-domain opset_import (not an ONNX model, or truncated)".into())
            })?;
        if opset < OPSET_RANGE.0 || opset > OPSET_RANGE.1 {
            return Err(model_err(format!(
                "opset {opset} is not supported (ruse reads opsets {}–{})",
                OPSET_RANGE.0, OPSET_RANGE.1
            )));
        }
        Ok(Importer {
            path: path.to_path_buf(),
            opset,
            graph: Graph::new("", "", Vec::new()),
            env: HashMap::new(),
            params_by_name: HashMap::new(),
        })
    }

    fn model_err(&self, reason: impl Into<String>) -> GraphError {
        GraphError::Model {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn run(mut self, model: &ModelProto) -> Result<Graph> {
        let g = model
            .graph
            .as_ref()
            .ok_or_else(|| self.model_err("the file holds no graph (truncated or not a model)"))?;
        for t in &g.initializer {
            let c = tensor_to_const(t, &self.path)?;
            self.env.insert(t.name.clone(), Slot::Const(c));
        }
        let inputs: Vec<_> = g
            .input
            .iter()
            .filter(|i| !self.env.contains_key(&i.name))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(self.model_err(format!(
                "ruse supports models with exactly one data input; this one has {} ({})",
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let tt = input
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .ok_or_else(|| self.model_err(format!("input '{}' is not a tensor", input.name)))?;
        if tt.elem_type != data_type::FLOAT {
            return Err(self.model_err(format!(
                "input '{}' has element type {} but ruse models take float32 input",
                input.name, tt.elem_type
            )));
        }
        let dims = tt.shape.as_ref().map(|s| s.dim.clone()).unwrap_or_default();
        if dims.len() < 2 {
            return Err(self.model_err(format!(
                "input '{}' has rank {}: ruse needs a leading batch axis plus at least one data axis",
                input.name,
                dims.len()
            )));
        }
        let mut shape = Vec::new();
        for (i, d) in dims.iter().enumerate().skip(1) {
            match d.dim_value {
                Some(v) if v > 0 => shape.push(v as usize),
                _ => {
                    return Err(self.model_err(format!(
                        "input '{}' axis {i} has a dynamic size ({}); only the batch axis (0) may be symbolic",
                        input.name,
                        d.dim_param.clone().unwrap_or_else(|| "unknown".into())
                    )))
                }
            }
        }
        // A fixed batch size in the file (often 1) is not binding: every graph runs any batch size.
        self.graph = Graph::new(
            if g.name.is_empty() {
                "model".to_string()
            } else {
                g.name.clone()
            },
            input.name.clone(),
            shape,
        );
        self.env.insert(input.name.clone(), Slot::Value(0));
        for (i, node) in g.node.iter().enumerate() {
            self.node(node, i)?;
        }
        let [out] = g.output.as_slice() else {
            return Err(self.model_err(format!(
                "ruse supports models with exactly one output; this one has {}",
                g.output.len()
            )));
        };
        match self.env.get(&out.name) {
            Some(Slot::Value(v)) => self.graph.output = *v,
            Some(Slot::Const(_)) => {
                return Err(self.model_err(format!(
                    "output '{}' does not depend on the input",
                    out.name
                )))
            }
            None => return Err(self.model_err(format!("output '{}' is never computed", out.name))),
        }
        if let Some(declared) = out
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
        {
            let got = self.graph.output_shape().to_vec();
            let want: Vec<Option<i64>> = declared.dim.iter().skip(1).map(|d| d.dim_value).collect();
            let fits = want.len() == got.len()
                && want
                    .iter()
                    .zip(&got)
                    .all(|(w, g)| w.is_none_or(|w| w as usize == *g || w <= 0));
            if !declared.dim.is_empty() && !fits {
                return Err(self.model_err(format!(
                    "output '{}' is declared with per-sample shape {:?} but computes {:?}",
                    out.name, want, got
                )));
            }
        }
        for p in &model.metadata_props {
            if p.key == META_INPUT_DOMAIN {
                let parts: Vec<f32> = p
                    .value
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .collect();
                match parts.as_slice() {
                    [lo, hi] if lo < hi && lo.is_finite() && hi.is_finite() => {
                        self.graph.input_domain = (*lo, *hi)
                    }
                    _ => {
                        return Err(self.model_err(format!(
                            "metadata {META_INPUT_DOMAIN}='{}' is not 'lo,hi'",
                            p.value
                        )))
                    }
                }
            } else {
                self.graph.metadata.insert(p.key.clone(), p.value.clone());
            }
        }
        Ok(self.graph)
    }

    // ---- helpers ---------------------------------------------------------------------------

    fn node_name(node: &NodeProto, idx: usize) -> String {
        if node.name.is_empty() {
            format!(
                "#{idx} -> {}",
                node.output.first().map(String::as_str).unwrap_or("?")
            )
        } else {
            node.name.clone()
        }
    }

    fn unsupported_attr(&self, node: &NodeProto, idx: usize, what: String) -> GraphError {
        GraphError::UnsupportedAttribute {
            path: self.path.clone(),
            node: Self::node_name(node, idx),
            op: node.op_type.clone(),
            attribute: what,
        }
    }

    fn shape_err(&self, node: &NodeProto, idx: usize, reason: String) -> GraphError {
        GraphError::Shape {
            path: self.path.clone(),
            node: Self::node_name(node, idx),
            op: node.op_type.clone(),
            reason,
        }
    }

    fn slot(&self, node: &NodeProto, idx: usize, i: usize) -> Result<Option<Slot>> {
        match node.input.get(i) {
            None => Ok(None),
            Some(n) if n.is_empty() => Ok(None),
            Some(n) => self.env.get(n).cloned().map(Some).ok_or_else(|| {
                self.shape_err(
                    node,
                    idx,
                    format!("input '{n}' is used before it is defined"),
                )
            }),
        }
    }

    fn need(&self, node: &NodeProto, idx: usize, i: usize) -> Result<Slot> {
        self.slot(node, idx, i)?
            .ok_or_else(|| self.shape_err(node, idx, format!("missing input {i}")))
    }

    fn need_const(&self, node: &NodeProto, idx: usize, i: usize) -> Result<Const> {
        match self.need(node, idx, i)? {
            Slot::Const(c) => Ok(c),
            Slot::Value(_) => Err(self.shape_err(
                node,
                idx,
                format!("input {i} ('{}') must be a constant, but it depends on the model input (data-dependent shapes are not supported)", node.input[i]),
            )),
        }
    }

    fn int_attr(&self, node: &NodeProto, name: &str, default: i64) -> i64 {
        attr(node, name).map_or(default, |a| a.i)
    }

    fn float_attr(&self, node: &NodeProto, name: &str, default: f32) -> f32 {
        attr(node, name).map_or(default, |a| a.f)
    }

    fn ints_attr(&self, node: &NodeProto, name: &str) -> Option<Vec<i64>> {
        attr(node, name).map(|a| a.ints.clone())
    }

    fn string_attr(&self, node: &NodeProto, name: &str) -> Option<String> {
        attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    /// Rejects attributes this op ignores silently in other tools but that change the result.
    fn check_attrs(&self, node: &NodeProto, idx: usize, allowed: &[&str]) -> Result<()> {
        for a in &node.attribute {
            if !allowed.contains(&a.name.as_str()) {
                return Err(self.unsupported_attr(
                    node,
                    idx,
                    format!("'{}' (not implemented for this op)", a.name),
                ));
            }
        }
        Ok(())
    }

    fn param(&mut self, c: &Const, fallback: &str, trainable: bool) -> Result<ParamId> {
        let (dims, data, name) = match c {
            Const::F32 { dims, data, name } => (dims.clone(), data.clone(), name.clone()),
            Const::I64 { dims, data } => (
                dims.clone(),
                data.iter().map(|&v| v as f32).collect(),
                String::new(),
            ),
        };
        let name = if name.is_empty() {
            fallback.to_string()
        } else {
            name
        };
        if let Some(&p) = self.params_by_name.get(&name) {
            if self.graph.params[p].tensor.dims() == dims.as_slice() {
                if trainable {
                    self.graph.params[p].trainable = true;
                }
                return Ok(p);
            }
        }
        let t = Tensor::from_vec(data, dims, &Device::Cpu)?;
        let mut unique = name.clone();
        let mut k = 1;
        while self.params_by_name.contains_key(&unique) {
            unique = format!("{name}_{k}");
            k += 1;
        }
        let p = self.graph.add_param(unique.clone(), t, trainable);
        self.params_by_name.insert(unique, p);
        Ok(p)
    }

    fn operand(&mut self, s: &Slot, fallback: &str, trainable: bool) -> Result<Operand> {
        Ok(match s {
            Slot::Value(v) => Operand::Value(*v),
            Slot::Const(c) => Operand::Param(self.param(c, fallback, trainable)?),
        })
    }

    fn emit(&mut self, node: &NodeProto, idx: usize, op: Op, inputs: Vec<Operand>) -> Result<()> {
        let out_name = node
            .output
            .first()
            .cloned()
            .ok_or_else(|| self.shape_err(node, idx, "node has no output".into()))?;
        let v = self
            .graph
            .add_node(Self::node_name(node, idx), op, inputs)
            .map_err(|e| match e {
                GraphError::Shape { reason, .. } => self.shape_err(node, idx, reason),
                other => other,
            })?;
        self.graph.values[v].name = out_name.clone();
        self.env.insert(out_name, Slot::Value(v));
        Ok(())
    }

    fn set_const(&mut self, node: &NodeProto, c: Const) {
        if let Some(o) = node.output.first() {
            let c = match c {
                Const::F32 { dims, data, name } if name.is_empty() => Const::F32 {
                    dims,
                    data,
                    name: o.clone(),
                },
                other => other,
            };
            self.env.insert(o.clone(), Slot::Const(c));
        }
    }

    fn value_shape(&self, v: ValueId) -> Vec<usize> {
        self.graph.values[v].shape.clone()
    }

    /// Resolves an ONNX full-rank axis (may be negative) against rank `rank`.
    fn axis(&self, node: &NodeProto, idx: usize, a: i64, rank: usize) -> Result<usize> {
        let r = rank as i64;
        let v = if a < 0 { a + r } else { a };
        if v < 0 || v >= r {
            return Err(self.unsupported_attr(
                node,
                idx,
                format!("axis {a} out of range for rank {rank}"),
            ));
        }
        Ok(v as usize)
    }

    /// A per-sample axis from a full-rank axis; the batch axis (0) is refused.
    fn sample_axis(&self, node: &NodeProto, idx: usize, a: i64, full_rank: usize) -> Result<usize> {
        let v = self.axis(node, idx, a, full_rank)?;
        if v == 0 {
            return Err(self.unsupported_attr(
                node,
                idx,
                "axis 0 (the batch axis) cannot be used here".into(),
            ));
        }
        Ok(v - 1)
    }

    /// Reshape target (full ONNX shape, with 0 / -1) applied to a batched value of per-sample shape `s`.
    fn reshape_target(
        &self,
        node: &NodeProto,
        idx: usize,
        s: &[usize],
        target: &[i64],
        allowzero: bool,
    ) -> Result<Vec<usize>> {
        let per: usize = s.iter().product();
        let full_in: Vec<usize> = std::iter::once(1).chain(s.iter().copied()).collect();
        let first = *target
            .first()
            .ok_or_else(|| self.shape_err(node, idx, "empty target shape".into()))?;
        if !(first == 0 || first == -1 || first == 1) {
            return Err(self.shape_err(
                node,
                idx,
                format!("target shape {target:?} would mix the batch axis with data axes"),
            ));
        }
        let mut out = Vec::new();
        let mut hole = None;
        for (i, &t) in target.iter().enumerate().skip(1) {
            match t {
                0 if !allowzero => out.push(*full_in.get(i).ok_or_else(|| {
                    self.shape_err(
                        node,
                        idx,
                        format!("0 at axis {i} has no input axis to copy"),
                    )
                })?),
                -1 if hole.is_none() => {
                    hole = Some(out.len());
                    out.push(1);
                }
                t if t > 0 => out.push(t as usize),
                _ => {
                    return Err(self.shape_err(
                        node,
                        idx,
                        format!("invalid target shape {target:?}"),
                    ))
                }
            }
        }
        let known: usize = out.iter().product();
        if let Some(h) = hole {
            if known == 0 || !per.is_multiple_of(known) {
                return Err(self.shape_err(
                    node,
                    idx,
                    format!("cannot reshape [N, {s:?}] into {target:?}"),
                ));
            }
            out[h] = per / known;
        }
        if out.iter().product::<usize>() != per {
            return Err(self.shape_err(
                node,
                idx,
                format!("cannot reshape [N, {s:?}] into {target:?}"),
            ));
        }
        Ok(out)
    }

    /// Pads of a conv/pool from `pads` or `auto_pad`, as (top, left, bottom, right).
    fn spatial_pads(
        &self,
        node: &NodeProto,
        idx: usize,
        input_hw: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dil: [usize; 2],
    ) -> Result<[usize; 4]> {
        let auto = self
            .string_attr(node, "auto_pad")
            .unwrap_or_else(|| "NOTSET".into());
        match auto.as_str() {
            "NOTSET" | "" => {
                let p = self.ints_attr(node, "pads").unwrap_or_else(|| vec![0; 4]);
                if p.len() != 4 || p.iter().any(|&v| v < 0) {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        format!("pads {p:?} (2-D ops need 4 non-negative pads)"),
                    ));
                }
                Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
            }
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut pads = [0; 4];
                for a in 0..2 {
                    let out = input_hw[a].div_ceil(stride[a]);
                    let span = (kernel[a] - 1) * dil[a] + 1;
                    let total = ((out - 1) * stride[a] + span).saturating_sub(input_hw[a]);
                    let (small, big) = (total / 2, total - total / 2);
                    let (b, e) = if auto == "SAME_UPPER" {
                        (small, big)
                    } else {
                        (big, small)
                    };
                    pads[a] = b;
                    pads[a + 2] = e;
                }
                Ok(pads)
            }
            other => Err(self.unsupported_attr(node, idx, format!("auto_pad={other}"))),
        }
    }

    fn pair(&self, node: &NodeProto, idx: usize, name: &str, default: usize) -> Result<[usize; 2]> {
        match self.ints_attr(node, name) {
            None => Ok([default; 2]),
            Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => {
                Ok([v[0] as usize, v[1] as usize])
            }
            Some(v) => Err(self.unsupported_attr(
                node,
                idx,
                format!("{name}={v:?} (2-D ops need two positive values)"),
            )),
        }
    }

    fn only_first_output(&self, node: &NodeProto, idx: usize) -> Result<()> {
        if node.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(self.unsupported_attr(
                node,
                idx,
                format!(
                    "extra outputs {:?} (only the first output is supported)",
                    &node.output[1..]
                ),
            ));
        }
        Ok(())
    }

    // ---- the node mapping ------------------------------------------------------------------

    fn node(&mut self, node: &NodeProto, idx: usize) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(GraphError::UnsupportedOp {
                path: self.path.clone(),
                node: Self::node_name(node, idx),
                op: format!("{}::{}", node.domain, node.op_type),
                hint: ": only the default ONNX domain is supported".into(),
            });
        }
        let op = node.op_type.as_str();
        let name = Self::node_name(node, idx);
        match op {
            "Constant" => {
                let c = if let Some(t) = attr(node, "value").and_then(|a| a.t.as_ref()) {
                    tensor_to_const(t, &self.path)?
                } else if let Some(a) = attr(node, "value_float") {
                    Const::F32 {
                        dims: vec![],
                        data: vec![a.f],
                        name: String::new(),
                    }
                } else if let Some(a) = attr(node, "value_floats") {
                    Const::F32 {
                        dims: vec![a.floats.len()],
                        data: a.floats.clone(),
                        name: String::new(),
                    }
                } else if let Some(a) = attr(node, "value_int") {
                    Const::I64 {
                        dims: vec![],
                        data: vec![a.i],
                    }
                } else if let Some(a) = attr(node, "value_ints") {
                    Const::I64 {
                        dims: vec![a.ints.len()],
                        data: a.ints.clone(),
                    }
                } else {
                    return Err(self.unsupported_attr(node, idx, "Constant without a supported value attribute (value, value_float(s), value_int(s))".into()));
                };
                self.set_const(node, c);
                Ok(())
            }
            "Identity" | "Dropout" => {
                if op == "Dropout" {
                    self.only_first_output(node, idx)?;
                }
                let s = self.need(node, idx, 0)?;
                if let Some(o) = node.output.first() {
                    self.env.insert(o.clone(), s);
                }
                Ok(())
            }
            "Cast" => {
                let to = self.int_attr(node, "to", data_type::FLOAT as i64) as i32;
                match self.need(node, idx, 0)? {
                    Slot::Value(v) if to == data_type::FLOAT => {
                        self.env.insert(node.output[0].clone(), Slot::Value(v));
                        Ok(())
                    }
                    Slot::Value(_) => Err(self.unsupported_attr(
                        node,
                        idx,
                        format!("to={to}: run-time values must stay float32"),
                    )),
                    Slot::Const(c) => {
                        let dims = c.dims().to_vec();
                        let out = if to == data_type::FLOAT || to == data_type::DOUBLE {
                            Const::F32 {
                                dims,
                                data: c.floats(),
                                name: String::new(),
                            }
                        } else {
                            Const::I64 {
                                dims,
                                data: c.ints(),
                            }
                        };
                        self.set_const(node, out);
                        Ok(())
                    }
                }
            }
            "Shape" => {
                let dims: Vec<i64> = match self.need(node, idx, 0)? {
                    // The batch axis is reported as 0 so that a Reshape fed by it copies the batch size.
                    Slot::Value(v) => std::iter::once(0)
                        .chain(self.value_shape(v).iter().map(|&d| d as i64))
                        .collect(),
                    Slot::Const(c) => c.dims().iter().map(|&d| d as i64).collect(),
                };
                let r = dims.len() as i64;
                let norm = |a: i64| (if a < 0 { a + r } else { a }).clamp(0, r) as usize;
                let start = norm(self.int_attr(node, "start", 0));
                let end = norm(self.int_attr(node, "end", r));
                let d = dims[start..end.max(start)].to_vec();
                self.set_const(
                    node,
                    Const::I64 {
                        dims: vec![d.len()],
                        data: d,
                    },
                );
                Ok(())
            }
            "Gather" => {
                let data = self.need_const(node, idx, 0)?;
                let ind = self.need_const(node, idx, 1)?;
                let rank = data.dims().len();
                let axis = self.axis(node, idx, self.int_attr(node, "axis", 0), rank.max(1))?;
                if rank != 1 || axis != 0 {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        "Gather is only supported on 1-D constants (shape arithmetic)".into(),
                    ));
                }
                let n = data.dims()[0] as i64;
                let picks = ind
                    .ints()
                    .iter()
                    .map(|&i| {
                        let j = if i < 0 { i + n } else { i };
                        if j < 0 || j >= n {
                            Err(self.shape_err(node, idx, format!("index {i} out of range {n}")))
                        } else {
                            Ok(j as usize)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                let out = data.with(
                    ind.dims().to_vec(),
                    |d| picks.iter().map(|&p| d[p]).collect(),
                    |d| picks.iter().map(|&p| d[p]).collect(),
                );
                self.set_const(node, out);
                Ok(())
            }
            "ConstantOfShape" => {
                let shape = self.need_const(node, idx, 0)?.ints();
                if shape.iter().any(|&d| d < 0) || shape.iter().product::<i64>() > 1 << 24 {
                    return Err(self.shape_err(node, idx, format!("invalid shape {shape:?}")));
                }
                let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
                let n = dims.iter().product();
                let fill = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => tensor_to_const(t, &self.path)?,
                    None => Const::F32 {
                        dims: vec![1],
                        data: vec![0.0],
                        name: String::new(),
                    },
                };
                let out = fill.with(
                    dims,
                    |d| vec![d.first().copied().unwrap_or(0); n],
                    |d| vec![d.first().copied().unwrap_or(0.0); n],
                );
                self.set_const(node, out);
                Ok(())
            }
            "Slice" => {
                let data = self.need_const(node, idx, 0).map_err(|_| {
                    self.unsupported_attr(node, idx, "Slice of a run-time value (only shape arithmetic on constants is supported)".into())
                })?;
                let r = data.dims().len();
                let get = |i: usize, name: &str| -> Result<Option<Vec<i64>>> {
                    if self.opset >= 10 {
                        Ok(match self.slot(node, idx, i)? {
                            Some(Slot::Const(c)) => Some(c.ints()),
                            Some(Slot::Value(_)) => {
                                return Err(self.shape_err(
                                    node,
                                    idx,
                                    format!("{name} must be constant"),
                                ))
                            }
                            None => None,
                        })
                    } else {
                        Ok(self.ints_attr(node, name))
                    }
                };
                let starts = get(1, "starts")?.unwrap_or_default();
                let ends = get(2, "ends")?.unwrap_or_default();
                let axes = get(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
                let steps = get(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
                if ends.len() != starts.len()
                    || axes.len() != starts.len()
                    || steps.len() != starts.len()
                {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        "starts/ends/axes/steps of different lengths".into(),
                    ));
                }
                let mut picks: Vec<Vec<usize>> =
                    data.dims().iter().map(|&d| (0..d).collect()).collect();
                for k in 0..starts.len() {
                    let a = self.axis(node, idx, axes[k], r)?;
                    let d = data.dims()[a] as i64;
                    let step = steps[k];
                    if step == 0 {
                        return Err(self.unsupported_attr(node, idx, "step 0".into()));
                    }
                    let norm = |v: i64| if v < 0 { v + d } else { v };
                    let mut v = Vec::new();
                    if step > 0 {
                        let (mut i, e) = (norm(starts[k]).clamp(0, d), norm(ends[k]).clamp(0, d));
                        while i < e {
                            v.push(i as usize);
                            i += step;
                        }
                    } else {
                        let (mut i, e) = (
                            norm(starts[k]).clamp(-1, d - 1),
                            norm(ends[k]).clamp(-1, d - 1),
                        );
                        while i > e {
                            v.push(i as usize);
                            i += step;
                        }
                    }
                    picks[a] = v;
                }
                self.set_const(node, gather_nd(&data, &picks));
                Ok(())
            }
            "Unsqueeze" | "Squeeze" => {
                let axes: Option<Vec<i64>> = if self.opset >= 13 {
                    match self.slot(node, idx, 1)? {
                        Some(Slot::Const(c)) => Some(c.ints()),
                        Some(Slot::Value(_)) => {
                            return Err(self.shape_err(node, idx, "axes must be constant".into()))
                        }
                        None => None,
                    }
                } else {
                    self.ints_attr(node, "axes")
                };
                let s = self.need(node, idx, 0)?;
                let (full_in, batched): (Vec<usize>, bool) = match &s {
                    Slot::Value(v) => (
                        std::iter::once(1).chain(self.value_shape(*v)).collect(),
                        true,
                    ),
                    Slot::Const(c) => (c.dims().to_vec(), false),
                };
                let full_out: Vec<usize> = if op == "Unsqueeze" {
                    let axes = axes.ok_or_else(|| {
                        self.unsupported_attr(node, idx, "Unsqueeze without axes".into())
                    })?;
                    let r = full_in.len() + axes.len();
                    let mut ax = axes
                        .iter()
                        .map(|&a| self.axis(node, idx, a, r))
                        .collect::<Result<Vec<_>>>()?;
                    ax.sort_unstable();
                    let mut out = full_in.clone();
                    for a in ax {
                        if batched && a == 0 {
                            return Err(self.unsupported_attr(
                                node,
                                idx,
                                "axis 0 (the batch axis) cannot be unsqueezed".into(),
                            ));
                        }
                        out.insert(a, 1);
                    }
                    out
                } else {
                    let r = full_in.len();
                    let ax: Vec<usize> = match axes {
                        Some(a) => a
                            .iter()
                            .map(|&a| self.axis(node, idx, a, r))
                            .collect::<Result<_>>()?,
                        None => (0..r)
                            .filter(|&i| full_in[i] == 1 && !(batched && i == 0))
                            .collect(),
                    };
                    for &a in &ax {
                        if full_in[a] != 1 {
                            return Err(self.shape_err(
                                node,
                                idx,
                                format!("axis {a} has size {} and cannot be squeezed", full_in[a]),
                            ));
                        }
                        if batched && a == 0 {
                            return Err(self.unsupported_attr(
                                node,
                                idx,
                                "axis 0 (the batch axis) cannot be squeezed".into(),
                            ));
                        }
                    }
                    full_in
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !ax.contains(i))
                        .map(|(_, d)| *d)
                        .collect()
                };
                match s {
                    Slot::Value(v) => self.emit(
                        node,
                        idx,
                        Op::Reshape {
                            shape: full_out[1..].to_vec(),
                        },
                        vec![Operand::Value(v)],
                    ),
                    Slot::Const(c) => {
                        self.set_const(node, c.with(full_out, |d| d.to_vec(), |d| d.to_vec()));
                        Ok(())
                    }
                }
            }
            "Concat" => {
                let slots = (0..node.input.len())
                    .map(|i| self.need(node, idx, i))
                    .collect::<Result<Vec<_>>>()?;
                let a = self.int_attr(node, "axis", 0);
                if slots.iter().all(|s| matches!(s, Slot::Const(_))) {
                    let cs: Vec<Const> = slots
                        .into_iter()
                        .filter_map(|s| match s {
                            Slot::Const(c) => Some(c),
                            _ => None,
                        })
                        .collect();
                    if cs.iter().any(|c| c.dims().len() != 1) {
                        return Err(self.unsupported_attr(
                            node,
                            idx,
                            "Concat of constants is only supported for 1-D (shape) tensors".into(),
                        ));
                    }
                    let is_f = cs.iter().any(|c| matches!(c, Const::F32 { .. }));
                    let out = if is_f {
                        let d: Vec<f32> = cs.iter().flat_map(|c| c.floats()).collect();
                        Const::F32 {
                            dims: vec![d.len()],
                            data: d,
                            name: String::new(),
                        }
                    } else {
                        let d: Vec<i64> = cs.iter().flat_map(|c| c.ints()).collect();
                        Const::I64 {
                            dims: vec![d.len()],
                            data: d,
                        }
                    };
                    self.set_const(node, out);
                    return Ok(());
                }
                let mut ops = Vec::new();
                for s in &slots {
                    match s {
                        Slot::Value(v) => ops.push(Operand::Value(*v)),
                        Slot::Const(_) => {
                            return Err(self.unsupported_attr(
                                node,
                                idx,
                                "Concat of a constant with a run-time value".into(),
                            ))
                        }
                    }
                }
                let Operand::Value(v0) = ops[0] else {
                    unreachable!("checked above")
                };
                let axis = self.sample_axis(node, idx, a, self.value_shape(v0).len() + 1)?;
                self.emit(node, idx, Op::Concat { axis }, ops)
            }
            "Reshape" | "Flatten" => {
                let s = self.need(node, idx, 0)?;
                let target: Vec<i64> = if op == "Reshape" {
                    if self.opset < 5 {
                        self.ints_attr(node, "shape").unwrap_or_default()
                    } else {
                        self.need_const(node, idx, 1)?.ints()
                    }
                } else {
                    let full: Vec<usize> = match &s {
                        Slot::Value(v) => std::iter::once(1).chain(self.value_shape(*v)).collect(),
                        Slot::Const(c) => c.dims().to_vec(),
                    };
                    let a = self.int_attr(node, "axis", 1);
                    let r = full.len() as i64;
                    let a = if a < 0 { a + r } else { a };
                    if a < 0 || a > r {
                        return Err(self.unsupported_attr(
                            node,
                            idx,
                            format!("axis {a} out of range"),
                        ));
                    }
                    let a = a as usize;
                    if matches!(s, Slot::Value(_)) && a == 0 {
                        return Err(self.unsupported_attr(
                            node,
                            idx,
                            "axis=0 would merge the batch axis into the data".into(),
                        ));
                    }
                    let lead: usize = full[..a].iter().product();
                    let tail: usize = full[a..].iter().product();
                    if matches!(s, Slot::Value(_)) {
                        // Leading part starts with the batch axis: keep it as 0 (copy).
                        let rest: usize = full[1..a].iter().product();
                        if rest == 1 {
                            vec![0, tail as i64]
                        } else {
                            vec![0, rest as i64, tail as i64]
                        }
                    } else {
                        vec![lead as i64, tail as i64]
                    }
                };
                let allowzero = self.int_attr(node, "allowzero", 0) == 1;
                match s {
                    Slot::Value(v) => {
                        let shape = self.reshape_target(
                            node,
                            idx,
                            &self.value_shape(v),
                            &target,
                            allowzero,
                        )?;
                        self.emit(node, idx, Op::Reshape { shape }, vec![Operand::Value(v)])
                    }
                    Slot::Const(c) => {
                        let n: usize = c.dims().iter().product();
                        let mut dims = Vec::new();
                        let mut hole = None;
                        for (i, &t) in target.iter().enumerate() {
                            match t {
                                0 => dims.push(*c.dims().get(i).unwrap_or(&1)),
                                -1 => {
                                    hole = Some(i);
                                    dims.push(1)
                                }
                                t if t > 0 => dims.push(t as usize),
                                _ => {
                                    return Err(self.shape_err(
                                        node,
                                        idx,
                                        format!("invalid target {target:?}"),
                                    ))
                                }
                            }
                        }
                        if let Some(h) = hole {
                            let k: usize = dims.iter().product();
                            dims[h] = n.checked_div(k).unwrap_or(0);
                        }
                        if dims.iter().product::<usize>() != n {
                            return Err(self.shape_err(
                                node,
                                idx,
                                format!("cannot reshape constant {:?} into {target:?}", c.dims()),
                            ));
                        }
                        self.set_const(node, c.with(dims, |d| d.to_vec(), |d| d.to_vec()));
                        Ok(())
                    }
                }
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let a = self.need(node, idx, 0)?;
                let b = self.need(node, idx, 1)?;
                if let (Slot::Const(x), Slot::Const(y)) = (&a, &b) {
                    let out = fold_binary(op, x, y).ok_or_else(|| {
                        self.shape_err(
                            node,
                            idx,
                            format!(
                                "cannot fold {op} of constants {:?} and {:?}",
                                x.dims(),
                                y.dims()
                            ),
                        )
                    })?;
                    self.set_const(node, out);
                    return Ok(());
                }
                if self.opset < 7 && attr(node, "broadcast").is_some() {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        "legacy broadcast attribute".into(),
                    ));
                }
                let oa = self.operand(&a, &format!("{name}_a"), false)?;
                let ob = self.operand(&b, &format!("{name}_b"), false)?;
                let o = match op {
                    "Add" => Op::Add,
                    "Sub" => Op::Sub,
                    "Mul" => Op::Mul,
                    _ => Op::Div,
                };
                self.emit(node, idx, o, vec![oa, ob])
            }
            "Relu" | "Sigmoid" | "Tanh" => {
                self.check_attrs(node, idx, &[])?;
                let x = self.value_in(node, idx, 0)?;
                let o = match op {
                    "Relu" => Op::Relu,
                    "Sigmoid" => Op::Sigmoid,
                    _ => Op::Tanh,
                };
                self.emit(node, idx, o, vec![x])
            }
            "LeakyRelu" => {
                self.check_attrs(node, idx, &["alpha"])?;
                let x = self.value_in(node, idx, 0)?;
                let alpha = self.float_attr(node, "alpha", 0.01);
                self.emit(node, idx, Op::LeakyRelu { alpha }, vec![x])
            }
            "Softmax" => {
                self.check_attrs(node, idx, &["axis"])?;
                let x = self.value_in(node, idx, 0)?;
                let Operand::Value(v) = x else {
                    unreachable!("value_in returns values")
                };
                let r = self.value_shape(v).len() + 1;
                let default = if self.opset >= 13 { -1 } else { 1 };
                let axis = self.sample_axis(node, idx, self.int_attr(node, "axis", default), r)?;
                // Before opset 13 softmax flattens all axes from `axis` on: same thing only when it is the last.
                if self.opset < 13 && axis + 2 != r {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        format!(
                            "axis {} with opset {} (coerced 2-D softmax over several axes)",
                            axis + 1,
                            self.opset
                        ),
                    ));
                }
                self.emit(node, idx, Op::Softmax { axis }, vec![x])
            }
            "Clip" => {
                let x = self.value_in(node, idx, 0)?;
                let (min, max) = if self.opset >= 11 {
                    let lo = match self.slot(node, idx, 1)? {
                        Some(Slot::Const(c)) => c.floats().first().copied(),
                        Some(Slot::Value(_)) => {
                            return Err(self.shape_err(node, idx, "min must be constant".into()))
                        }
                        None => None,
                    };
                    let hi = match self.slot(node, idx, 2)? {
                        Some(Slot::Const(c)) => c.floats().first().copied(),
                        Some(Slot::Value(_)) => {
                            return Err(self.shape_err(node, idx, "max must be constant".into()))
                        }
                        None => None,
                    };
                    (lo.unwrap_or(f32::NEG_INFINITY), hi.unwrap_or(f32::INFINITY))
                } else {
                    (
                        self.float_attr(node, "min", f32::NEG_INFINITY),
                        self.float_attr(node, "max", f32::INFINITY),
                    )
                };
                self.emit(node, idx, Op::Clip { min, max }, vec![x])
            }
            "Gemm" => {
                self.check_attrs(
                    node,
                    idx,
                    &["alpha", "beta", "transA", "transB", "broadcast"],
                )?;
                if self.int_attr(node, "transA", 0) != 0 {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        "transA=1 (A must be the batched [N, K] input)".into(),
                    ));
                }
                let x = self.value_in(node, idx, 0)?;
                let b = self.need_const(node, idx, 1)?;
                let wb = Operand::Param(self.param(&b, &format!("{name}_B"), true)?);
                let mut ins = vec![x, wb];
                if let Some(c) = self.slot(node, idx, 2)? {
                    let Slot::Const(c) = c else {
                        return Err(self.shape_err(node, idx, "C must be constant".into()));
                    };
                    ins.push(Operand::Param(self.param(
                        &c,
                        &format!("{name}_C"),
                        true,
                    )?));
                }
                let o = Op::Gemm {
                    alpha: self.float_attr(node, "alpha", 1.0),
                    beta: self.float_attr(node, "beta", 1.0),
                    trans_b: self.int_attr(node, "transB", 0) != 0,
                };
                self.emit(node, idx, o, ins)
            }
            "MatMul" => {
                let a = self.need(node, idx, 0)?;
                let b = self.need(node, idx, 1)?;
                if matches!((&a, &b), (Slot::Const(_), Slot::Const(_))) {
                    return Err(self.unsupported_attr(node, idx, "MatMul of two constants".into()));
                }
                let oa = self.operand(&a, &format!("{name}_A"), true)?;
                let ob = self.operand(&b, &format!("{name}_B"), true)?;
                self.emit(node, idx, Op::MatMul, vec![oa, ob])
            }
            "Conv" => {
                self.check_attrs(
                    node,
                    idx,
                    &[
                        "auto_pad",
                        "dilations",
                        "group",
                        "kernel_shape",
                        "pads",
                        "strides",
                    ],
                )?;
                let x = self.value_in(node, idx, 0)?;
                let w = self.need_const(node, idx, 1)?;
                if w.dims().len() != 4 {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        format!(
                            "weight of shape {:?}: only 2-D convolution is supported",
                            w.dims()
                        ),
                    ));
                }
                if w.dims().contains(&0) {
                    return Err(self.shape_err(
                        node,
                        idx,
                        format!("weight of shape {:?} is empty", w.dims()),
                    ));
                }
                let kernel = [w.dims()[2], w.dims()[3]];
                if let Some(k) = self.ints_attr(node, "kernel_shape") {
                    if k.len() != 2 || k[0] as usize != kernel[0] || k[1] as usize != kernel[1] {
                        return Err(self.unsupported_attr(
                            node,
                            idx,
                            format!("kernel_shape {k:?} does not match weight {:?}", w.dims()),
                        ));
                    }
                }
                let stride = self.pair(node, idx, "strides", 1)?;
                let dilation = self.pair(node, idx, "dilations", 1)?;
                let Operand::Value(v) = x else {
                    unreachable!("value_in returns values")
                };
                let s = self.value_shape(v);
                if s.len() != 3 {
                    return Err(self.shape_err(
                        node,
                        idx,
                        format!("input [N, {s:?}]: only 2-D convolution (NCHW) is supported"),
                    ));
                }
                let pads = self.spatial_pads(node, idx, [s[1], s[2]], kernel, stride, dilation)?;
                let groups = self.int_attr(node, "group", 1).max(1) as usize;
                let wp = Operand::Param(self.param(&w, &format!("{name}_W"), true)?);
                let mut ins = vec![x, wp];
                if let Some(b) = self.slot(node, idx, 2)? {
                    let Slot::Const(b) = b else {
                        return Err(self.shape_err(node, idx, "bias must be constant".into()));
                    };
                    ins.push(Operand::Param(self.param(
                        &b,
                        &format!("{name}_B"),
                        true,
                    )?));
                }
                self.emit(
                    node,
                    idx,
                    Op::Conv(ConvAttrs {
                        stride,
                        pads,
                        dilation,
                        groups,
                    }),
                    ins,
                )
            }
            "MaxPool" | "AveragePool" => {
                self.check_attrs(
                    node,
                    idx,
                    &[
                        "auto_pad",
                        "ceil_mode",
                        "dilations",
                        "kernel_shape",
                        "pads",
                        "strides",
                        "storage_order",
                        "count_include_pad",
                    ],
                )?;
                self.only_first_output(node, idx)?;
                if self.int_attr(node, "storage_order", 0) != 0 {
                    return Err(self.unsupported_attr(node, idx, "storage_order=1".into()));
                }
                let x = self.value_in(node, idx, 0)?;
                let Operand::Value(v) = x else {
                    unreachable!("value_in returns values")
                };
                let s = self.value_shape(v);
                if s.len() != 3 {
                    return Err(self.shape_err(
                        node,
                        idx,
                        format!("input [N, {s:?}]: only 2-D pooling (NCHW) is supported"),
                    ));
                }
                let kernel = match self.ints_attr(node, "kernel_shape") {
                    Some(k) if k.len() == 2 && k.iter().all(|&v| v >= 1) => {
                        [k[0] as usize, k[1] as usize]
                    }
                    k => {
                        return Err(self.unsupported_attr(
                            node,
                            idx,
                            format!("kernel_shape={k:?} (2-D pools need two positive sizes)"),
                        ))
                    }
                };
                let stride = self.pair(node, idx, "strides", 1)?;
                let dilation = self.pair(node, idx, "dilations", 1)?;
                if op == "AveragePool" && dilation != [1, 1] {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        format!("dilations={dilation:?}"),
                    ));
                }
                let pads = self.spatial_pads(node, idx, [s[1], s[2]], kernel, stride, dilation)?;
                let ceil_mode = self.int_attr(node, "ceil_mode", 0) != 0;
                let pool = PoolAttrs {
                    kernel,
                    stride,
                    pads,
                    dilation,
                    ceil_mode,
                };
                let o = if op == "MaxPool" {
                    Op::MaxPool(pool)
                } else {
                    if ceil_mode {
                        return Err(self.unsupported_attr(
                            node,
                            idx,
                            "ceil_mode=1 for AveragePool (divisor rules differ between runtimes)"
                                .into(),
                        ));
                    }
                    Op::AveragePool {
                        pool,
                        count_include_pad: self.int_attr(node, "count_include_pad", 0) != 0,
                    }
                };
                self.emit(node, idx, o, vec![x])
            }
            "GlobalAveragePool" => {
                let x = self.value_in(node, idx, 0)?;
                self.emit(node, idx, Op::GlobalAveragePool, vec![x])
            }
            "BatchNormalization" => {
                self.check_attrs(
                    node,
                    idx,
                    &["epsilon", "momentum", "training_mode", "spatial"],
                )?;
                self.only_first_output(node, idx)?;
                if self.int_attr(node, "training_mode", 0) != 0 {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        "training_mode=1 (only inference batch norm is supported)".into(),
                    ));
                }
                if self.int_attr(node, "spatial", 1) != 1 {
                    return Err(self.unsupported_attr(node, idx, "spatial=0".into()));
                }
                let x = self.value_in(node, idx, 0)?;
                let mut ins = vec![x];
                for (i, suffix) in ["scale", "bias", "mean", "var"].iter().enumerate() {
                    let c = self.need_const(node, idx, i + 1)?;
                    ins.push(Operand::Param(self.param(
                        &c,
                        &format!("{name}_{suffix}"),
                        false,
                    )?));
                }
                self.emit(
                    node,
                    idx,
                    Op::BatchNorm {
                        epsilon: self.float_attr(node, "epsilon", 1e-5),
                    },
                    ins,
                )
            }
            "Transpose" => {
                if let Slot::Const(c) = self.need(node, idx, 0)? {
                    let r = c.dims().len();
                    let perm = self
                        .ints_attr(node, "perm")
                        .unwrap_or_else(|| (0..r as i64).rev().collect());
                    let perm = perm
                        .iter()
                        .map(|&p| self.axis(node, idx, p, r))
                        .collect::<Result<Vec<_>>>()?;
                    self.set_const(node, transpose_const(&c, &perm));
                    return Ok(());
                }
                let x = self.value_in(node, idx, 0)?;
                let Operand::Value(v) = x else {
                    unreachable!("value_in returns values")
                };
                let r = self.value_shape(v).len() + 1;
                let perm = self
                    .ints_attr(node, "perm")
                    .unwrap_or_else(|| (0..r as i64).rev().collect());
                if perm.first() != Some(&0) {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        format!("perm {perm:?} moves the batch axis"),
                    ));
                }
                let perm = perm[1..]
                    .iter()
                    .map(|&p| (p as usize).wrapping_sub(1))
                    .collect();
                self.emit(node, idx, Op::Transpose { perm }, vec![x])
            }
            "Pad" => {
                let x = self.value_in(node, idx, 0)?;
                let Operand::Value(v) = x else {
                    unreachable!("value_in returns values")
                };
                let r = self.value_shape(v).len() + 1;
                let mode = self
                    .string_attr(node, "mode")
                    .unwrap_or_else(|| "constant".into());
                if mode != "constant" {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        format!("mode={mode} (only constant padding)"),
                    ));
                }
                let (pads, value) = if self.opset >= 11 {
                    let p = self.need_const(node, idx, 1)?.ints();
                    let value = match self.slot(node, idx, 2)? {
                        Some(Slot::Const(c)) => c.floats().first().copied().unwrap_or(0.0),
                        Some(Slot::Value(_)) => {
                            return Err(self.shape_err(
                                node,
                                idx,
                                "constant_value must be constant".into(),
                            ))
                        }
                        None => 0.0,
                    };
                    let axes: Vec<usize> = match self.slot(node, idx, 3)? {
                        Some(Slot::Const(c)) => c
                            .ints()
                            .iter()
                            .map(|&a| self.axis(node, idx, a, r))
                            .collect::<Result<_>>()?,
                        Some(Slot::Value(_)) => {
                            return Err(self.shape_err(node, idx, "axes must be constant".into()))
                        }
                        None => (0..r).collect(),
                    };
                    let mut full = vec![0i64; 2 * r];
                    if p.len() != 2 * axes.len() {
                        return Err(self.unsupported_attr(
                            node,
                            idx,
                            format!("pads {p:?} for {} axes", axes.len()),
                        ));
                    }
                    for (k, &a) in axes.iter().enumerate() {
                        full[a] = p[k];
                        full[a + r] = p[k + axes.len()];
                    }
                    (full, value)
                } else {
                    (
                        self.ints_attr(node, "pads").unwrap_or_default(),
                        self.float_attr(node, "value", 0.0),
                    )
                };
                if pads.len() != 2 * r || pads.iter().any(|&p| p < 0) {
                    return Err(self.unsupported_attr(
                        node,
                        idx,
                        format!("pads {pads:?} (need {} non-negative values)", 2 * r),
                    ));
                }
                if pads[0] != 0 || pads[r] != 0 {
                    return Err(self.unsupported_attr(node, idx, "padding the batch axis".into()));
                }
                let pairs = (1..r)
                    .map(|a| (pads[a] as usize, pads[a + r] as usize))
                    .collect();
                self.emit(node, idx, Op::Pad { pads: pairs, value }, vec![x])
            }
            _ => Err(GraphError::UnsupportedOp {
                path: self.path.clone(),
                node: name,
                op: op.to_string(),
                hint: String::new(),
            }),
        }
    }

    fn value_in(&self, node: &NodeProto, idx: usize, i: usize) -> Result<Operand> {
        match self.need(node, idx, i)? {
            Slot::Value(v) => Ok(Operand::Value(v)),
            Slot::Const(_) => Err(self.shape_err(
                node,
                idx,
                format!("input {i} is a constant; ruse only evaluates this op on run-time values"),
            )),
        }
    }
}

/// Folds an elementwise op on two constants (numpy broadcasting).
fn fold_binary(op: &str, a: &Const, b: &Const) -> Option<Const> {
    let dims = crate::op::broadcast_shapes(a.dims(), b.dims())?;
    let n: usize = dims.iter().product();
    let index = |src: &[usize], flat: usize| -> usize {
        // Map a flat index in the broadcast shape onto the source shape.
        let mut rem = flat;
        let mut off = 0;
        let mut stride = 1;
        for (k, &d) in dims.iter().enumerate().rev() {
            let i = rem % d;
            rem /= d;
            let sk = k as isize - (dims.len() as isize - src.len() as isize);
            if sk >= 0 {
                let sd = src[sk as usize];
                if sd != 1 {
                    off += i * stride;
                }
                stride *= sd;
            }
        }
        off
    };
    if matches!(a, Const::I64 { .. }) && matches!(b, Const::I64 { .. }) {
        let (x, y) = (a.ints(), b.ints());
        let data = (0..n)
            .map(|f| {
                let (p, q) = (x[index(a.dims(), f)], y[index(b.dims(), f)]);
                match op {
                    "Add" => Some(p + q),
                    "Sub" => Some(p - q),
                    "Mul" => Some(p * q),
                    _ => p.checked_div(q),
                }
            })
            .collect::<Option<Vec<_>>>()?;
        return Some(Const::I64 { dims, data });
    }
    let (x, y) = (a.floats(), b.floats());
    let data = (0..n)
        .map(|f| {
            let (p, q) = (x[index(a.dims(), f)], y[index(b.dims(), f)]);
            match op {
                "Add" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                _ => p / q,
            }
        })
        .collect();
    Some(Const::F32 {
        dims,
        data,
        name: String::new(),
    })
}

/// Row-major strides of a shape.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Picks the given indices along every axis of a constant (slicing).
fn gather_nd(c: &Const, picks: &[Vec<usize>]) -> Const {
    let st = strides(c.dims());
    let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
    let n: usize = dims.iter().product();
    let offsets: Vec<usize> = (0..n)
        .map(|mut f| {
            let mut off = 0;
            for a in (0..dims.len()).rev() {
                off += picks[a][f % dims[a]] * st[a];
                f /= dims[a];
            }
            off
        })
        .collect();
    c.with(
        dims.clone(),
        |d| offsets.iter().map(|&o| d[o]).collect(),
        |d| offsets.iter().map(|&o| d[o]).collect(),
    )
}

/// Permutes the axes of a constant.
fn transpose_const(c: &Const, perm: &[usize]) -> Const {
    let st = strides(c.dims());
    let dims: Vec<usize> = perm.iter().map(|&p| c.dims()[p]).collect();
    let n: usize = dims.iter().product();
    let offsets: Vec<usize> = (0..n)
        .map(|mut f| {
            let mut off = 0;
            for a in (0..dims.len()).rev() {
                off += (f % dims[a]) * st[perm[a]];
                f /= dims[a];
            }
            off
        })
        .collect();
    c.with(
        dims.clone(),
        |d| offsets.iter().map(|&o| d[o]).collect(),
        |d| offsets.iter().map(|&o| d[o]).collect(),
    )
}
