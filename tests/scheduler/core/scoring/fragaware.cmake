# The default policy's scorer (scheduler/core/scoring/fragaware.cc) and the model pressure it reads.
tideslice_test(fragaware_scorer_test
  SOURCES scheduler/core/scoring/fragaware_test.cc
  LIBS tideslice_core tideslice_kube_json)
