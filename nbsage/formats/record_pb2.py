"""SageMaker's `aialgs.data.Record` protobuf messages, built with the protobuf library.

The schema is SageMaker's record.proto (proto2, package aialgs.data), declared here as a
FileDescriptorProto so that no generated code or protoc is needed:

    message Float32Tensor { repeated float  values = 1 [packed=true]; repeated uint64 keys = 2 [packed=true];
                            repeated uint64 shape = 3 [packed=true]; }
    message Float64Tensor { repeated double values = 1 [packed=true]; ... }
    message Int32Tensor   { repeated int32  values = 1 [packed=true]; ... }
    message Bytes         { repeated bytes value = 1; optional string content_type = 2; }
    message Value { oneof value { Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3;
                                  Int32Tensor int32_tensor = 7; Bytes bytes = 9; } }
    message Record { map<string, Value> features = 1; map<string, Value> label = 2;
                     optional string uid = 3; optional string metadata = 4; optional string configuration = 5; }
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
PACKAGE = "aialgs.data"


def _tensor(fdp, name: str, value_type: int) -> None:
    msg = fdp.message_type.add(name=name)
    for number, field_name, ftype in ((1, "values", value_type), (2, "keys", _F.TYPE_UINT64),
                                      (3, "shape", _F.TYPE_UINT64)):
        f = msg.field.add(name=field_name, number=number, type=ftype, label=_F.LABEL_REPEATED)
        f.options.packed = True


def _build():
    fdp = descriptor_pb2.FileDescriptorProto(name="nbsage_record.proto", package=PACKAGE, syntax="proto2")
    fdp.options.java_package = "com.amazonaws.aialgorithms.proto"
    fdp.options.java_outer_classname = "RecordProtos"
    _tensor(fdp, "Float32Tensor", _F.TYPE_FLOAT)
    _tensor(fdp, "Float64Tensor", _F.TYPE_DOUBLE)
    _tensor(fdp, "Int32Tensor", _F.TYPE_INT32)
    b = fdp.message_type.add(name="Bytes")
    b.field.add(name="value", number=1, type=_F.TYPE_BYTES, label=_F.LABEL_REPEATED)
    b.field.add(name="content_type", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    v = fdp.message_type.add(name="Value")
    v.oneof_decl.add(name="value")
    for number, field_name, type_name in ((2, "float32_tensor", "Float32Tensor"), (3, "float64_tensor", "Float64Tensor"),
                                          (7, "int32_tensor", "Int32Tensor"), (9, "bytes", "Bytes")):
        v.field.add(name=field_name, number=number, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
                    type_name=f".{PACKAGE}.{type_name}", oneof_index=0)
    r = fdp.message_type.add(name="Record")
    for number, field_name in ((1, "features"), (2, "label")):
        entry_name = "FeaturesEntry" if field_name == "features" else "LabelEntry"
        entry = r.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
        entry.field.add(name="value", number=2, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
                        type_name=f".{PACKAGE}.Value")
        r.field.add(name=field_name, number=number, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                    type_name=f".{PACKAGE}.Record.{entry_name}")
    for number, field_name in ((3, "uid"), (4, "metadata"), (5, "configuration")):
        r.field.add(name=field_name, number=number, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    file = pool.FindFileByName(fdp.name)
    return {name: message_factory.GetMessageClass(file.message_types_by_name[name])
            for name in ("Float32Tensor", "Float64Tensor", "Int32Tensor", "Bytes", "Value", "Record")}


_classes = _build()
Float32Tensor = _classes["Float32Tensor"]
Float64Tensor = _classes["Float64Tensor"]
Int32Tensor = _classes["Int32Tensor"]
Bytes = _classes["Bytes"]
Value = _classes["Value"]
Record = _classes["Record"]
