// rotary: Rotary Position Embedding (RoPE) kernels, header-only. The umbrella header.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_ROTARY_HPP
#define ROTARY_ROTARY_HPP

#include "config.hpp"
#include "types.hpp"
#include "frequencies.hpp"
#include "angles.hpp"
#include "table.hpp"
#include "apply.hpp"
#include "table_free.hpp"
#include "multi_axis.hpp"
#include "scaling.hpp"
#include "long_term_decay.hpp"
#include "kernel_set.hpp"
#include "linear_attention.hpp"
#include "attention.hpp"
#include "kv_cache.hpp"

#endif  // ROTARY_ROTARY_HPP
