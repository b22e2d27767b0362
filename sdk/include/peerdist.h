/*
 * peerdist.h - the peerdist SDK's C ABI. Include this umbrella header.
 * See docs/c-abi.md for conventions, ownership, threading and stability.
 */
#ifndef PEERDIST_H
#define PEERDIST_H

#include "peerdist/common.h"
#include "peerdist/session.h"
#include "peerdist/events.h"
#include "peerdist/content.h"
#include "peerdist/job.h"
#include "peerdist/admin.h"

#endif /* PEERDIST_H */
