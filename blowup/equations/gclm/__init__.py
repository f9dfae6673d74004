"""The generalised Constantin-Lax-Majda (Okamoto-Sakajo-Wunsch) family: ω_t + a u ω_x = u_x ω, u_x = Hω."""
