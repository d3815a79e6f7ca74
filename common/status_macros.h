#pragma once

// Early-return helpers for absl::Status and absl::StatusOr.
//
//   RETURN_IF_ERROR(store.Put(index, data, proof));
//   ASSIGN_OR_RETURN(std::string bytes, store.Read(index));

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SHOAL_STATUS_CONCAT_INNER_(a, b) a##b
#define SHOAL_STATUS_CONCAT_(a, b) SHOAL_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status shoal_status_ = (expr);       \
    if (!shoal_status_.ok()) return shoal_status_; \
  } while (0)

#define SHOAL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(*tmp)

#define ASSIGN_OR_RETURN(lhs, expr) \
  SHOAL_ASSIGN_OR_RETURN_IMPL_(     \
      SHOAL_STATUS_CONCAT_(shoal_statusor_, __LINE__), lhs, expr)
