"""Model artifacts of the language track: the tokenizer they share, pretraining of the Countdown
generator, proxy reward and value predictors (`pretrain`), LoRA fine-tuning (`finetune`), and
the shipped models with one call that loads them (`shipped`)."""
