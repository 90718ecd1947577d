/* crd.c - descriptors of Terrane's custom resources (see crd.h). */
#include "crd.h"

const kube_resource CRD_ASSETMATERIALIZATIONS = {CRD_GROUP, CRD_VERSION, "assetmaterializations",
                                                 "AssetMaterialization", true};
const kube_resource CRD_ASSETSOURCES = {CRD_GROUP, CRD_VERSION, "assetsources", "AssetSource",
                                        true};
