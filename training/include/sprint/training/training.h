// Umbrella header of sprint_training: the SANA-Sprint sCM + LADD distillation maths (spec ../shared/specs/training.md).
#pragma once

#include "sprint/training/jvp.h"
#include "sprint/training/ladd.h"
#include "sprint/training/sampling.h"
#include "sprint/training/scm_loss.h"
#include "sprint/training/trigflow.h"
