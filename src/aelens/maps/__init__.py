"""Pure building blocks on arrays: scores (CKA, decoding), metrics (PSNR, SSIM, angles), 2-D projections, the atlas, traversals and rotation probe, and the figures drawn from them."""
