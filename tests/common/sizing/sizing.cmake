# The model sizing rule (common/sizing): parsing, the table of dtypes x modes x sizes, fitting.
tideslice_test(model_sizing_test
  SOURCES common/sizing/model_sizing_test.cc
  LIBS tideslice_sizing tideslice_catalog)

# Sizing by model through the admission webhook, over a real socket.
tideslice_test(webhook_sizing_test
  SOURCES scheduler/service/webhook_sizing_test.cc
  LIBS tideslice_service tideslice_sizing tideslice_log OpenSSL::Crypto)
