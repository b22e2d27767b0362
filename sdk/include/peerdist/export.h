/*
 * peerdist/export.h - symbol visibility, calling convention and C linkage macros.
 *
 * Hand-written on purpose: every public declaration goes through PD_API, every
 * callback type through PD_CALLBACK, every header body through PD_BEGIN_DECL /
 * PD_END_DECL, so the ABI is visible at a glance.
 */
#ifndef PEERDIST_EXPORT_H
#define PEERDIST_EXPORT_H

#if defined(_WIN32)
#  if defined(PD_BUILDING_LIBRARY)
#    define PD_API __declspec(dllexport)
#  else
#    define PD_API __declspec(dllimport)
#  endif
#  define PD_CALLBACK __cdecl
#else
#  if defined(PD_BUILDING_LIBRARY)
#    define PD_API __attribute__((visibility("default")))
#  else
#    define PD_API
#  endif
#  define PD_CALLBACK
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define PD_DEPRECATED(since, msg) __attribute__((deprecated("since " #since ": " msg)))
#elif defined(_MSC_VER)
#  define PD_DEPRECATED(since, msg) __declspec(deprecated("since " #since ": " msg))
#else
#  define PD_DEPRECATED(since, msg)
#endif

#ifdef __cplusplus
#  define PD_BEGIN_DECL extern "C" {
#  define PD_END_DECL }
#else
#  define PD_BEGIN_DECL
#  define PD_END_DECL
#endif

#endif /* PEERDIST_EXPORT_H */
