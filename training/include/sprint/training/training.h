// Umbrella header of sprint_training: the SANA-Sprint sCM + LADD distillation maths (docs/maths.md).
#pragma once

#include "sprint/training/jvp.h"
#include "sprint/training/ladd.h"
#include "sprint/training/sampling.h"
#include "sprint/training/scm_loss.h"
#include "sprint/training/trigflow.h"
