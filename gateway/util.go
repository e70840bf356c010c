package gateway

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
)

const typesMerge = types.MergePatchType

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
