# The default policy's scorer (scheduler/core/scoring/fragaware.cc) and the model pressure it
# reads, and the FGD baseline's scorer (fgd.cc) it is measured against.
tideslice_test(fragaware_scorer_test
  SOURCES scheduler/core/scoring/fragaware_test.cc scheduler/core/scoring/fgd_test.cc
  LIBS tideslice_core tideslice_kube_json)
