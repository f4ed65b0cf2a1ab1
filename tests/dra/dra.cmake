# Tests of the DRA driver (device-plugin/dra/) and its protos. Included from tests/CMakeLists.txt.
tideslice_test(dra_proto_wire_test
  SOURCES dra/proto_wire_test.cc
  LIBS tideslice_proto)
