# kubectl-tideslice (cli/) and what it reads that the scheduler writes.

# The filter's per-node reasons on pending pods (read by `kubectl tideslice why`).
tideslice_test(filter_recorder_test
  SOURCES scheduler/service/filter_recorder_test.cc
  LIBS tideslice_service tideslice_test_apiserver)

# kubectl-tideslice: golden output per command against the test API server with recorded objects.
tideslice_test(kubectl_tideslice_test
  SOURCES cli/kubectl_tideslice_test.cc
  LIBS tideslice_cli tideslice_test_apiserver)
