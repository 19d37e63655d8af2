//! The ruse model graph: typed ops with static shapes, forward evaluation with autodiff on candle
//! tensors, ONNX import and export, and a zoo of standard architectures.

pub mod backward;
pub mod error;
pub mod export;
pub mod forward;
pub mod graph;
pub mod import;
pub mod kernels;
pub mod loss;
pub mod onnx_proto;
pub mod op;
pub mod zoo;

pub use error::{GraphError, Result};
pub use graph::{Graph, Node, Operand, Param, ParamId, Value, ValueId, INPUT};
pub use op::{ConvAttrs, Op, PoolAttrs};
