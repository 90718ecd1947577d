/*
 * crd.h - the custom resources Terrane defines (crds/), as the client
 * library's resource descriptors. One place, so a new kind (or version) is
 * added here and nowhere else.
 */
#ifndef TERRANE_CRD_H
#define TERRANE_CRD_H

#include "kube/kube.h"

#define CRD_GROUP "terrane.io"
#define CRD_VERSION "v1alpha1"
#define CRD_API_VERSION CRD_GROUP "/" CRD_VERSION

extern const kube_resource CRD_ASSETMATERIALIZATIONS;
extern const kube_resource CRD_ASSETSOURCES;

#endif
