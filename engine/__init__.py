"""engine: a BPMN/DMN-driven workflow engine with a plugin microkernel."""

__version__ = "0.1.0"
