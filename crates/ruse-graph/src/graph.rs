//! The model graph: a DAG of typed nodes over run-time values and constant parameters.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};

use crate::error::{GraphError, Result};
use crate::op::{Op, OperandShape};

/// Index of a run-time value (value 0 is the graph input).
pub type ValueId = usize;
/// Index of a constant parameter tensor.
pub type ParamId = usize;

/// Where a node reads one operand from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// A value computed at run time (batched).
    Value(ValueId),
    /// A constant tensor (weight, bias, normalisation constant…).
    Param(ParamId),
}

/// A run-time value: its name and per-sample shape (the batch axis is implicit).
#[derive(Debug, Clone)]
pub struct Value {
    /// Name (the ONNX tensor name).
    pub name: String,
    /// Per-sample shape.
    pub shape: Vec<usize>,
}

/// A constant tensor of the graph.
#[derive(Debug, Clone)]
pub struct Param {
    /// Name (the ONNX initializer name).
    pub name: String,
    /// The tensor, f32 on the graph's device.
    pub tensor: Tensor,
    /// Whether training updates it (weights and biases yes, normalisation constants no).
    pub trainable: bool,
}

/// One op application, producing exactly one value.
#[derive(Debug, Clone)]
pub struct Node {
    /// Name (the ONNX node name).
    pub name: String,
    /// The operation.
    pub op: Op,
    /// Operands, in ONNX order.
    pub inputs: Vec<Operand>,
    /// The value it produces.
    pub output: ValueId,
}

/// A model: nodes in topological order, values, parameters, input domain.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Model name.
    pub name: String,
    /// All run-time values; `values[0]` is the input.
    pub values: Vec<Value>,
    /// All constant tensors.
    pub params: Vec<Param>,
    /// Nodes in an order where every operand is computed before use.
    pub nodes: Vec<Node>,
    /// The value the model returns (class scores for classifiers).
    pub output: ValueId,
    /// Valid range of each input element (pixel space), [0, 1] by default.
    pub input_domain: (f32, f32),
    /// Free-form metadata kept through export (e.g. class names, training settings).
    pub metadata: BTreeMap<String, String>,
}

/// The value id of the graph input.
pub const INPUT: ValueId = 0;

impl Graph {
    /// An empty graph with one input of the given per-sample shape.
    pub fn new(
        name: impl Into<String>,
        input_name: impl Into<String>,
        input_shape: Vec<usize>,
    ) -> Self {
        Graph {
            name: name.into(),
            values: vec![Value {
                name: input_name.into(),
                shape: input_shape,
            }],
            params: Vec::new(),
            nodes: Vec::new(),
            output: INPUT,
            input_domain: (0.0, 1.0),
            metadata: BTreeMap::new(),
        }
    }

    /// Per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.values[INPUT].shape
    }

    /// Per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.values[self.output].shape
    }

    /// Number of input elements per sample.
    pub fn input_len(&self) -> usize {
        self.input_shape().iter().product()
    }

    /// Number of output elements per sample (classes, for a classifier).
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }

    /// Adds a constant tensor and returns its id.
    pub fn add_param(
        &mut self,
        name: impl Into<String>,
        tensor: Tensor,
        trainable: bool,
    ) -> ParamId {
        self.params.push(Param {
            name: name.into(),
            tensor,
            trainable,
        });
        self.params.len() - 1
    }

    /// Adds a node after checking its operand shapes; returns the new value (which becomes the output).
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: Vec<Operand>,
    ) -> Result<ValueId> {
        let name = name.into();
        let shapes = inputs
            .iter()
            .map(|o| self.operand_shape(*o))
            .collect::<Result<Vec<_>>>()?;
        let shape = op
            .infer_shape(&shapes)
            .map_err(|reason| GraphError::Shape {
                path: "<graph>".into(),
                node: name.clone(),
                op: op.onnx_type().into(),
                reason,
            })?;
        self.values.push(Value {
            name: name.clone(),
            shape,
        });
        let output = self.values.len() - 1;
        self.nodes.push(Node {
            name,
            op,
            inputs,
            output,
        });
        self.output = output;
        Ok(output)
    }

    /// The shape of an operand (per-sample for values, full for params).
    pub fn operand_shape(&self, o: Operand) -> Result<OperandShape> {
        match o {
            Operand::Value(v) => self
                .values
                .get(v)
                .map(|v| OperandShape::Batched(v.shape.clone()))
                .ok_or_else(|| GraphError::Input(format!("no value {v}"))),
            Operand::Param(p) => self
                .params
                .get(p)
                .map(|p| OperandShape::Const(p.tensor.dims().to_vec()))
                .ok_or_else(|| GraphError::Input(format!("no parameter {p}"))),
        }
    }

    /// Total number of scalar parameters (trainable or not).
    pub fn param_count(&self) -> usize {
        self.params.iter().map(|p| p.tensor.elem_count()).sum()
    }

    /// Ids of the trainable parameters.
    pub fn trainable_params(&self) -> Vec<ParamId> {
        (0..self.params.len())
            .filter(|&i| self.params[i].trainable)
            .collect()
    }

    /// Parameter tensors in id order (the default weights for a forward pass).
    pub fn param_tensors(&self) -> Vec<Tensor> {
        self.params.iter().map(|p| p.tensor.clone()).collect()
    }

    /// Replaces parameter tensors (e.g. after a training step), checking shapes.
    pub fn set_params(&mut self, tensors: &[Tensor]) -> Result<()> {
        if tensors.len() != self.params.len() {
            return Err(GraphError::Input(format!(
                "{} parameter tensors for {} parameters",
                tensors.len(),
                self.params.len()
            )));
        }
        for (p, t) in self.params.iter_mut().zip(tensors) {
            if p.tensor.dims() != t.dims() {
                return Err(GraphError::Input(format!(
                    "parameter '{}' has shape {:?}, got {:?}",
                    p.name,
                    p.tensor.dims(),
                    t.dims()
                )));
            }
            p.tensor = t.detach();
        }
        Ok(())
    }

    /// Moves every parameter to `device`.
    pub fn to_device(&mut self, device: &Device) -> Result<()> {
        for p in &mut self.params {
            p.tensor = p.tensor.to_device(device)?.to_dtype(DType::F32)?;
        }
        Ok(())
    }

    /// Count of nodes per op type, for summaries.
    pub fn op_histogram(&self) -> BTreeMap<&'static str, usize> {
        let mut h = BTreeMap::new();
        for n in &self.nodes {
            *h.entry(n.op.onnx_type()).or_insert(0) += 1;
        }
        h
    }
}
